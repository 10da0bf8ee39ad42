"""The audit trail: one row per tool call (who, which tool, outcome, how long, with what arguments).

Every call leaves a row, whatever its arguments: they are stored with secret-looking keys masked
(`mask_arguments`) and made storable on every backend (`infra.storable.storable`: text holding a NUL
or a lone surrogate in the documented ``nt-escaped:`` form, NaN/Infinity as strings, strings over
4,096 characters shortened with their length and hash, nesting cut at 32 levels). While the database
is unreachable the row waits in the spool; a row the database refuses anyway is spooled too, and so
ends in ``dead_letters``: never dropped. Writing the row never fails the tool call it describes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from nt_mcp.infra.db import Database
from nt_mcp.infra.schema import audit_log
from nt_mcp.infra.spool import DurableWriter
from nt_mcp.infra.storable import safe_text, storable

log = logging.getLogger(__name__)

_SECRET_KEYS = ("key", "secret", "token", "password", "authorization")


def mask_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``arguments`` with values under secret-looking keys replaced by ``[REDACTED]``."""
    masked: dict[str, Any] = {}
    for name, value in arguments.items():
        lowered = name.lower()
        if any(marker in lowered for marker in _SECRET_KEYS) and lowered != "idempotency_key":
            masked[name] = "[REDACTED]"
        elif isinstance(value, dict):
            masked[name] = mask_arguments(value)
        else:
            masked[name] = value
    return masked


@dataclass(frozen=True)
class AuditRow:
    ts: datetime
    principal: str
    tool: str
    outcome: str
    duration_ms: float
    correlation_id: str
    arguments: dict[str, Any] | None


class AuditLog:
    def __init__(self, db: Database, writer: DurableWriter) -> None:
        self.db = db
        self.writer = writer

    async def record(self, row: AuditRow) -> bool:
        """Insert ``row`` (spooled for replay while the database is unreachable).

        Returns False, and logs, only when the row could be neither written nor spooled."""
        values = {
            "ts": row.ts,
            "principal": safe_text(row.principal)[:200],
            "tool": safe_text(row.tool)[:64],
            "outcome": safe_text(row.outcome)[:48],
            "duration_ms": row.duration_ms,
            "correlation_id": row.correlation_id[:32],
            "arguments": mask_arguments(storable(row.arguments)) if row.arguments else None,
        }
        try:
            await self.writer.insert("audit_log", values)
        except Exception:  # refused for its content: spool it, so it lands in dead_letters
            log.exception("audit row refused; spooled for dead letters", extra={"correlation_id": row.correlation_id})
            try:
                await self.writer.keep("insert", "audit_log", values)
            except Exception:
                log.exception("audit row lost", extra={"tool": row.tool, "correlation_id": row.correlation_id})
                return False
        return True

    @staticmethod
    def recent_query(principal: str, limit: int, tool: str | None = None) -> sa.Select[Any]:
        query = (
            sa.select(audit_log).where(audit_log.c.principal == principal).order_by(audit_log.c.ts.desc()).limit(limit)
        )
        if tool is not None:
            query = query.where(audit_log.c.tool == tool)
        return query

    async def recent(self, principal: str, limit: int, tool: str | None = None) -> list[AuditRow]:
        """``principal``'s latest calls, newest first (index ix_audit_log_principal_ts)."""
        async with self.db.connect() as conn:
            rows = (await conn.execute(self.recent_query(principal, limit, tool))).mappings().all()
        return [
            AuditRow(
                ts=r["ts"],
                principal=r["principal"],
                tool=r["tool"],
                outcome=r["outcome"],
                duration_ms=r["duration_ms"],
                correlation_id=r["correlation_id"],
                arguments=r["arguments"],
            )
            for r in rows
        ]

    @staticmethod
    def error_count_query(since: datetime) -> sa.Select[Any]:
        return (
            sa.select(sa.func.count())
            .select_from(audit_log)
            .where(audit_log.c.outcome != "ok", audit_log.c.ts >= since)
        )

    async def error_count_since(self, since: datetime) -> int:
        """Failed calls since ``since``, all principals (index ix_audit_log_failures_ts)."""
        async with self.db.connect() as conn:
            return int((await conn.execute(self.error_count_query(since))).scalar_one())
