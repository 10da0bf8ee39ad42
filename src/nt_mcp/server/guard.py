"""The one pipeline every tool call goes through.

principal -> scope -> rate limit -> handler (with a deadline) -> error mapping -> metrics -> audit row.

A `TradingError` becomes an ``isError`` result carrying the error envelope
``{"error": {"code", "message", "retryable", "retry_after_s"?, ...}}`` as the JSON text of its one
content block and under ``_meta["nt-mcp/error"]``, and with no ``structuredContent``: a tool's
``outputSchema`` describes its successful answer, and clients that validate structured content
(the TypeScript SDK, MCP Inspector) would otherwise reject every error result. Any other exception
becomes ``INTERNAL`` with a correlation id; its traceback goes to the log (stderr), never to the client.
A call the client cancels gets no answer; its audit row says ``CANCELLED``. Every call, refused or
not, leaves exactly one audit row.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pydantic
from mcp_types import CallToolResult, TextContent

from nt_mcp.errors import (
    AuthenticationError,
    AuthorizationError,
    InternalError,
    NotFoundError,
    RateLimitError,
    TradingError,
)
from nt_mcp.errors import ValidationError as ToolValidationError
from nt_mcp.infra.audit import AuditRow
from nt_mcp.infra.memory import release_free_memory
from nt_mcp.infra.observability import RATE_LIMIT_REJECTIONS, call_metrics
from nt_mcp.server.client_logging import lazy_client_log
from nt_mcp.server.principal import resolve_principal
from nt_mcp.tools.registry import Principal, ToolContext, ToolReply, ToolSpec
from nt_mcp.tools.services import Services

log = logging.getLogger(__name__)


class ToolTimeoutError(TradingError):
    code = "TIMEOUT"
    retryable = True


ERROR_META_KEY = "nt-mcp/error"
HEAVY_CALL_S = 1.0  # after a call this long, freed heap memory goes back to the OS
CANCELLED = "CANCELLED"  # the audit outcome of a call its client cancelled (no result is sent)

_ID_PREFIX = secrets.token_hex(4)  # this process's; the counter makes each id unique within it
_ID_COUNTER = itertools.count()


def new_correlation_id() -> str:
    """16 hex characters: a random per-process prefix and a call counter (unique, not secret; a
    counter instead of ``uuid4`` per call, which asks the OS for randomness every time)."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


def error_result(error: TradingError) -> CallToolResult:
    """The ``isError`` result for ``error``: the envelope as text and in ``_meta``, no structured content."""
    envelope = error.to_dict()
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps({"error": envelope}))],
        is_error=True,
        _meta={ERROR_META_KEY: envelope},
    )


def success_result(reply: pydantic.BaseModel | ToolReply) -> CallToolResult:
    data, extra = (reply.data, reply.extra_content) if isinstance(reply, ToolReply) else (reply, [])
    structured = data.model_dump(mode="json")
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(structured)), *extra], structured_content=structured
    )


def describe_validation_error(error: pydantic.ValidationError) -> ToolValidationError:
    """One clear message naming each bad argument, from pydantic's error list."""
    problems = []
    arguments = []
    for item in error.errors():
        name = ".".join(str(part) for part in item.get("loc", ())) or "arguments"
        arguments.append(name)
        problems.append(f"{name}: {item.get('msg', 'invalid value')}")
    return ToolValidationError(
        "Invalid arguments - " + "; ".join(problems), argument=arguments[0] if arguments else None
    )


def scope_error(spec: ToolSpec, principal: Principal) -> AuthorizationError | None:
    """``FORBIDDEN`` when ``principal`` lacks the scope ``spec`` needs, else None."""
    if spec.scope in principal.scopes:
        return None
    return AuthorizationError(
        f"Tool '{spec.name}' needs the '{spec.scope}' scope; this principal has "
        f"{', '.join(sorted(principal.scopes)) or 'none'}.",
        context={"required_scope": spec.scope},
    )


class Guard:
    def __init__(self, services: Services, local_principal: Principal | None) -> None:
        self.services = services
        self.local_principal = local_principal
        self.in_flight = 0  # tool calls running now; graceful shutdown waits for it to reach 0
        self._recording: set[asyncio.Task[None]] = set()  # audit rows of cancelled calls being written

    def resolve_principal(self) -> Principal:
        return resolve_principal(self.local_principal)

    async def run(self, spec: ToolSpec, arguments: dict[str, Any], mcp_context: Any = None) -> CallToolResult:
        """Run ``spec``'s handler for one call, through every step of the guard."""
        self.in_flight += 1
        try:
            return await self._run(spec, arguments, mcp_context)
        finally:
            self.in_flight -= 1

    async def _run(self, spec: ToolSpec, arguments: dict[str, Any], mcp_context: Any) -> CallToolResult:
        correlation_id = new_correlation_id()
        started = time.perf_counter()
        subject = "anonymous"
        try:
            principal = self.resolve_principal()
            subject = principal.subject
            forbidden = scope_error(spec, principal)
            if forbidden is not None:
                raise forbidden
            budget = self.services.settings.rate_limit_per_minute
            cost = min(spec.cost_of(arguments), budget)  # capped: any single call can run
            decision = await self.services.limiter.hit(subject, spec.name, cost)
            if not decision.allowed:
                RATE_LIMIT_REJECTIONS.labels(spec.name).inc()
                raise RateLimitError(
                    f"Rate limit for '{spec.name}' reached ({budget} units per minute; this call costs {cost}).",
                    retry_after_s=decision.retry_after_s,
                )
            ctx = ToolContext(self.services, principal, correlation_id, mcp_context, lazy_client_log(mcp_context))
            timeout = self.services.settings.tool_timeout_s
            try:
                async with asyncio.timeout(timeout):  # in this task: no task per call, as wait_for makes
                    reply = await spec.handler(ctx, **arguments)
            except TimeoutError:
                raise ToolTimeoutError(f"'{spec.name}' did not finish within {timeout:g} s and was stopped.") from None
            result, outcome = success_result(reply), "ok"
        except TradingError as error:
            result, outcome = error_result(error), error.code
        except asyncio.CancelledError:  # the client cancelled: no answer, but the call is audited
            self._record_soon(spec.name, subject, CANCELLED, started, correlation_id, arguments)
            raise
        except Exception:
            log.exception("tool failed", extra={"tool": spec.name, "correlation_id": correlation_id})
            internal = InternalError(correlation_id)
            result, outcome = error_result(internal), internal.code
        if time.perf_counter() - started > HEAVY_CALL_S:  # give the freed heap back (infra.memory)
            await asyncio.to_thread(release_free_memory)
        deferred = bool(spec.annotations.read_only_hint)  # money-moving calls keep synchronous rows
        await self.record(spec.name, subject, outcome, started, correlation_id, arguments, deferred=deferred)
        return result

    def _record_soon(self, *record: Any) -> None:
        """`record` in a task of its own: a cancelled call's task cannot await anything any more."""
        task = asyncio.get_running_loop().create_task(self.record(*record))
        self._recording.add(task)
        task.add_done_callback(self._recording.discard)

    async def refuse(self, spec: ToolSpec, failure: TradingError, arguments: dict[str, Any]) -> CallToolResult:
        """Answer a call refused before its handler ran (arguments failed the input schema)."""
        correlation_id = new_correlation_id()
        started = time.perf_counter()
        try:
            subject = self.resolve_principal().subject
        except AuthenticationError:
            subject = "anonymous"
        await self.record(spec.name, subject, failure.code, started, correlation_id, arguments)
        return error_result(failure)

    async def unknown_tool(self, name: str, arguments: dict[str, Any]) -> CallToolResult:
        """Answer a call to a tool this server does not have, in the same envelope as every failure."""
        correlation_id = new_correlation_id()
        started = time.perf_counter()
        try:
            subject = self.resolve_principal().subject
        except AuthenticationError:
            subject = "anonymous"
        failure = NotFoundError(f"There is no tool named {name[:100]!r}; tools/list names every tool.")
        await self.record("(unknown)", subject, failure.code, started, correlation_id, {"tool": name[:100]})
        return error_result(failure)

    async def record(
        self,
        tool: str,
        subject: str,
        outcome: str,
        started: float,
        correlation_id: str,
        arguments: dict[str, Any],
        *,
        deferred: bool = False,
    ) -> None:
        """Metrics, a log line and the audit row of one call; ``deferred`` (read-only tools) queues
        the row for the batched writer (`AuditLog.record`) instead of writing it before the reply."""
        elapsed = time.perf_counter() - started
        calls, latency = call_metrics(tool, outcome)
        calls.inc()
        latency.observe(elapsed)
        log.info(
            "tool call",
            extra={
                "tool": tool,
                "principal": subject,
                "outcome": outcome,
                "duration_ms": round(elapsed * 1000, 2),
                "correlation_id": correlation_id,
            },
        )
        await self.services.audit.record(
            AuditRow(
                ts=datetime.now(UTC),
                principal=subject,
                tool=tool,
                outcome=outcome,
                duration_ms=round(elapsed * 1000, 3),
                correlation_id=correlation_id,
                arguments=arguments,  # the audit log stores them in a form every backend takes
            ),
            deferred=deferred,
        )
