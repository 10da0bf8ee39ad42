"""The `@tool` declaration: what a tool is called, what it takes and returns, who may call it, what it costs.

A tool is an ``async def handler(ctx: ToolContext, <flat arguments>) -> OutputModel``. Its flat
arguments carry pydantic ``Field`` constraints and descriptions; they become the input schema.
The server (`nt_mcp.server.registry`) binds every declared tool onto the MCP server behind the
guard, which resolves the principal, checks the scope, spends the rate limit, runs the handler
and records metrics and the audit row. Handlers never see a call they are not allowed to serve.

Scopes: ``read`` (look, never change), ``backtest`` (compute and store backtests), ``trade``
(anything that sends or cancels orders: such tools are declared ``destructive``), ``admin``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from mcp_types import ContentBlock, ToolAnnotations
from pydantic import BaseModel

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context

    from nt_mcp.tools.services import Services

Scope = Literal["read", "backtest", "trade", "admin"]
LogLevel = Literal["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
ClientLog = Callable[[LogLevel, str], Awaitable[None]]


@dataclass(frozen=True)
class Principal:
    """Who is calling: a token subject over HTTP, or the local operator over stdio."""

    subject: str
    scopes: frozenset[str]
    kind: Literal["local", "token"] = "local"


@dataclass
class ToolContext:
    """What a handler gets besides its arguments."""

    services: Services
    principal: Principal
    correlation_id: str
    mcp: Context[Any, Any] | None = None
    client_log: ClientLog | None = None
    in_job: bool = False  # true when a stored job runs the handler (budgets for jobs apply)

    async def log(self, level: LogLevel, message: str) -> None:
        """Send an MCP log notification (``notifications/message``) to the client, when it asked for
        this level (``logging/setLevel``); otherwise, and outside an MCP request, do nothing."""
        if self.client_log is not None:
            await self.client_log(level, message)

    async def report_progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Send an MCP progress notification when the client asked for them; otherwise do nothing."""
        if self.mcp is None:
            return
        try:
            await self.mcp.report_progress(progress, total, message)
        except (ValueError, RuntimeError):  # no request in flight (direct calls in tests)
            return


@dataclass
class ToolReply:
    """A handler's answer with extra content blocks (an image, say) beside the structured data."""

    data: BaseModel
    extra_content: list[ContentBlock] = field(default_factory=list)


Handler = Callable[..., Awaitable[BaseModel | ToolReply]]
Cost = int | Callable[[Mapping[str, Any]], int]  # rate-limit units per call, or a function of its arguments


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    handler: Handler
    output_model: type[BaseModel]
    scope: Scope
    cost: Cost
    annotations: ToolAnnotations

    def cost_of(self, arguments: Mapping[str, Any]) -> int:
        """Rate-limit units this call spends (at least 1; see `nt_mcp.tools.costs`)."""
        return max(1, self.cost(arguments) if callable(self.cost) else self.cost)

    @functools.cached_property
    def argument_names(self) -> tuple[str, ...]:
        """The handler's flat argument names (everything after the ToolContext); read once, every call
        checks against it."""
        return tuple(inspect.signature(self.handler).parameters)[1:]


def tool(
    *,
    output: type[BaseModel],
    scope: Scope,
    title: str,
    cost: Cost = 1,
    read_only: bool = False,
    destructive: bool = False,
    idempotent: bool = False,
    open_world: bool = False,
    name: str | None = None,
) -> Callable[[Handler], ToolSpec]:
    """Declare a tool. The handler's docstring is the description an agent reads.

    ``destructive`` tools move money or cancel orders and must require the ``trade`` scope.
    """
    if destructive and scope != "trade":
        raise ValueError("destructive tools need the trade scope")
    if destructive and read_only:
        raise ValueError("a tool cannot be both read-only and destructive")

    def declare(handler: Handler) -> ToolSpec:
        return ToolSpec(
            name=name or handler.__name__,
            description=inspect.cleandoc(handler.__doc__ or ""),
            handler=handler,
            output_model=output,
            scope=scope,
            cost=cost,
            annotations=ToolAnnotations(
                title=title,
                read_only_hint=read_only,
                destructive_hint=destructive,
                idempotent_hint=idempotent,
                open_world_hint=open_world,
            ),
        )

    return declare
