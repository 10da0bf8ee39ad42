"""MCP logging: ``logging/setLevel`` per connection, and the log notifications long tools send.

A client chooses the lowest level it wants with ``logging/setLevel`` (RFC 5424 levels, ``debug`` ..
``emergency``); until it does, ``info`` and above are sent. The level is kept in the SDK's
per-connection state, so each session filters on its own. Clients on the 2026-07-28 revision opt in per
request instead (the ``io.modelcontextprotocol/logLevel`` ``_meta`` key), as the SDK computes. Tools
send through ``ToolContext.log(level, message)``; messages go out as ``notifications/message`` with
logger ``nt-mcp`` on the request's own stream. These are for the user watching the client, not the
server's own log (that goes to stderr as JSON lines).

The SDK marks its logging helpers deprecated (the 2026-07-28 revision drops ``logging/setLevel``);
handshake-era clients, every client today, still use it, so the notification is sent as a typed
notification rather than through those helpers (and no deprecation warning reaches stderr).
"""

from __future__ import annotations

import logging
from typing import Any, get_args

from mcp.server.connection import allowed_log_levels
from mcp_types import EmptyResult, LoggingMessageNotification, LoggingMessageNotificationParams, SetLevelRequestParams

from nt_mcp.tools.registry import ClientLog, LogLevel

log = logging.getLogger(__name__)

LEVELS: tuple[LogLevel, ...] = get_args(LogLevel)
DEFAULT_LEVEL: LogLevel = "info"
LOGGER_NAME = "nt-mcp"
_STATE_KEY = "nt-mcp/log-level"


def _connection_state(session: Any) -> dict[str, Any] | None:
    """The SDK's per-connection scratch dict (``Connection.state``) behind a request's session."""
    state = getattr(getattr(session, "_connection", None), "state", None)
    return state if isinstance(state, dict) else None


async def set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
    """The ``logging/setLevel`` handler: remember the level for this connection."""
    state = _connection_state(ctx.session)
    if state is not None:
        state[_STATE_KEY] = params.level
    return EmptyResult()


def client_log_for(mcp_context: Any) -> ClientLog | None:
    """A sender of log notifications to the client of ``mcp_context`` (the SDK's tool Context),
    honouring its connection's level; None outside an MCP request."""
    if mcp_context is None:
        return None
    try:
        request = mcp_context.request_context
        session, request_id = request.session, request.request_id
        opted_in = allowed_log_levels(session.protocol_version, request.meta)
    except (ValueError, RuntimeError, AttributeError):
        return None

    async def send(level: LogLevel, message: str) -> None:
        wanted = (_connection_state(session) or {}).get(_STATE_KEY, DEFAULT_LEVEL)
        if level not in opted_in or LEVELS.index(level) < LEVELS.index(wanted):
            return
        notification = LoggingMessageNotification(
            params=LoggingMessageNotificationParams(level=level, logger=LOGGER_NAME, data=message)
        )
        try:
            await session.send_notification(notification, related_request_id=request_id)
        except Exception as error:  # a client gone mid-call must not fail the tool
            log.debug("log notification not sent", extra={"error": type(error).__name__})

    return send


def lazy_client_log(mcp_context: Any) -> ClientLog | None:
    """`client_log_for` resolved on the first message instead of on every call (most calls send none)."""
    if mcp_context is None:
        return None
    resolved: list[ClientLog | None] = []

    async def send(level: LogLevel, message: str) -> None:
        if not resolved:
            resolved.append(client_log_for(mcp_context))
        sender = resolved[0]
        if sender is not None:
            await sender(level, message)

    return send
