"""Server health and the caller's own audit trail: server_status, ping, get_audit_log."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from nt_mcp.tools.registry import ToolContext, tool


class StorageStatus(BaseModel):
    backend: Literal["sqlite", "postgresql"]
    healthy: bool
    latency_ms: float
    detail: str


class CacheStatus(BaseModel):
    backend: Literal["memory", "redis"]
    healthy: bool


class ServerStatus(BaseModel):
    status: Literal["ok", "degraded"] = Field(description="degraded when anything in degraded_reasons is down")
    degraded_reasons: list[str] = Field(description="what is down right now and what the server does instead")
    version: str
    mode: Literal["paper", "live"] = Field(description="trading mode; live needs two explicit settings")
    transport: str
    storage: StorageStatus
    cache: CacheStatus
    rate_limit_backend: Literal["memory", "redis"]
    rate_limit_per_minute: int
    circuit_breakers: dict[str, str] = Field(description="upstream service -> closed, open or half-open")
    spool_pending: int = Field(description="writes waiting on local disk for the database to come back")
    uptime_s: float
    failed_calls_last_hour: int | None = Field(
        description="tool calls that ended in an error during the last hour, all principals; null if storage is down"
    )
    principal: str
    scopes: list[str]
    checked_at: datetime


@tool(output=ServerStatus, scope="read", title="Server status", read_only=True, idempotent=True)
async def server_status(ctx: ToolContext) -> ServerStatus:
    """Report the server's version, trading mode (paper or live), storage backend and its health,
    cache and rate-limit backends, uptime, and the calling principal with its scopes.
    Use it first to learn what this server can do and whether anything is degraded."""
    s = ctx.services
    health = await s.db.health()
    reasons = await s.degraded_reasons(health)
    cache_ok = await s.cache.ping()
    failed: int | None = None
    if health.ok:
        with contextlib.suppress(Exception):  # storage may fail between the probe and the count
            failed = await s.audit.error_count_since(datetime.now(UTC) - timedelta(hours=1))
    return ServerStatus(
        status="degraded" if reasons else "ok",
        degraded_reasons=reasons,
        version=s.version,
        mode=s.settings.mode,
        transport=s.settings.transport,
        storage=StorageStatus(
            backend=health.backend,
            healthy=health.ok,
            latency_ms=health.latency_ms,
            detail=health.detail,
        ),
        cache=CacheStatus(backend=s.cache.name, healthy=cache_ok),
        rate_limit_backend=s.limiter.backend,
        rate_limit_per_minute=s.settings.rate_limit_per_minute,
        circuit_breakers=s.upstreams.states(),
        spool_pending=s.spool.count(),
        uptime_s=round(s.uptime_s, 3),
        failed_calls_last_hour=failed,
        principal=ctx.principal.subject,
        scopes=sorted(ctx.principal.scopes),
        checked_at=datetime.now(UTC),
    )


class Pong(BaseModel):
    pong: Literal[True] = True
    server_time: datetime
    echo: str | None = None


@tool(output=Pong, scope="read", title="Ping", read_only=True, idempotent=True)
async def ping(
    ctx: ToolContext,
    echo: Annotated[str | None, Field(max_length=200, description="Optional text to send back unchanged.")] = None,
) -> Pong:
    """Check that the server answers. Returns the server's UTC time and echoes `echo` back."""
    return Pong(server_time=datetime.now(UTC), echo=echo)


class AuditEntry(BaseModel):
    ts: datetime
    tool: str
    outcome: str = Field(description="'ok' or the error code the call ended with")
    duration_ms: float
    correlation_id: str
    arguments: dict[str, Any] | None


class AuditTrail(BaseModel):
    principal: str
    entries: list[AuditEntry]


@tool(output=AuditTrail, scope="read", title="My recent tool calls", read_only=True)
async def get_audit_log(
    ctx: ToolContext,
    limit: Annotated[int, Field(ge=1, le=500, description="How many of the latest calls to return.")] = 50,
    tool_name: Annotated[
        str | None, Field(max_length=64, description="Only calls of this tool, e.g. 'place_order'.")
    ] = None,
) -> AuditTrail:
    """List the calling principal's own latest tool calls, newest first: tool, outcome (ok or the
    error code), duration, correlation id and arguments (secrets masked). A principal sees only
    its own calls."""
    rows = await ctx.services.audit.recent(ctx.principal.subject, limit, tool_name)
    return AuditTrail(
        principal=ctx.principal.subject,
        entries=[
            AuditEntry(
                ts=r.ts if r.ts.tzinfo else r.ts.replace(tzinfo=UTC),
                tool=r.tool,
                outcome=r.outcome,
                duration_ms=r.duration_ms,
                correlation_id=r.correlation_id,
                arguments=r.arguments,
            )
            for r in rows
        ],
    )


TOOLS = [server_status, ping, get_audit_log]
