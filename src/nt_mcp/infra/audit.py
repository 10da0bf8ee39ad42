"""The audit trail: one row per tool call (who, which tool, outcome, how long, with what arguments).

Every call leaves a row, whatever its arguments: they are stored with secret-looking keys masked
(`mask_arguments`) and made storable on every backend (`infra.storable.storable`: text holding a NUL
or a lone surrogate in the documented ``nt-escaped:`` form, NaN/Infinity as strings, strings over
4,096 characters shortened with their length and hash, nesting cut at 32 levels). While the database
is unreachable the row waits in the spool; a row the database refuses anyway is spooled too, and so
ends in ``dead_letters``: never dropped. Writing the row never fails the tool call it describes.

Rows of read-only calls may be *deferred* (``record(row, deferred=True)``): queued in process memory
and written in batches off the reply path by a background flusher, at most ``flush_ms`` after the
first queued row or as soon as ``batch_size`` rows wait. Readers of the trail (`recent`,
`error_count_since`) flush the queue first, so a caller reading its own trail sees every call it
made; `close` (server shutdown) flushes what is left. A crash (SIGKILL, power loss) loses at most
the rows queued in the last ``flush_ms`` milliseconds. Calls that move money are never deferred.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    def __init__(self, db: Database, writer: DurableWriter, flush_ms: float = 0.0, batch_size: int = 500) -> None:
        self.db = db
        self.writer = writer
        self.flush_ms = flush_ms  # 0: every row is written before the call answers
        self.batch_size = batch_size
        self._queue: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    @staticmethod
    def _values(row: AuditRow) -> dict[str, Any]:
        return {
            "ts": row.ts,
            "principal": safe_text(row.principal)[:200],
            "tool": safe_text(row.tool)[:64],
            "outcome": safe_text(row.outcome)[:48],
            "duration_ms": row.duration_ms,
            "correlation_id": row.correlation_id[:32],
            "arguments": mask_arguments(storable(row.arguments)) if row.arguments else None,
        }

    async def record(self, row: AuditRow, *, deferred: bool = False) -> bool:
        """Insert ``row`` (spooled for replay while the database is unreachable); with ``deferred``
        (read-only calls) queue it for the background flusher instead of writing it now.

        Returns False, and logs, only when the row could be neither written nor spooled."""
        values = self._values(row)
        if deferred and self.flush_ms > 0 and not self._closed:
            self._queue.append(values)
            self._ensure_flusher()
            self._wake.set()
            return True
        return await self._write_one(values)

    async def _write_one(self, values: dict[str, Any]) -> bool:
        try:
            await self.writer.insert("audit_log", values)
        except Exception:  # refused for its content: spool it, so it lands in dead_letters
            log.exception(
                "audit row refused; spooled for dead letters", extra={"correlation_id": values["correlation_id"]}
            )
            try:
                await self.writer.keep("insert", "audit_log", values)
            except Exception:
                log.exception(
                    "audit row lost", extra={"tool": values["tool"], "correlation_id": values["correlation_id"]}
                )
                return False
        return True

    def _ensure_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())

    async def _flush_forever(self) -> None:
        """Wait for a queued row, give the batch ``flush_ms`` to fill (or ``batch_size`` rows), write it."""
        while True:
            await self._wake.wait()
            deadline = asyncio.get_running_loop().time() + self.flush_ms / 1000
            while len(self._queue) < self.batch_size:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                await asyncio.sleep(min(remaining, 0.005))
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # flush() already falls back row by row; never let the flusher die
                log.exception("audit flush failed")

    async def flush(self) -> None:
        """Write every row queued before this call now (in batches of ``batch_size``, one transaction each).

        Rows queued while it writes wait for the next flush: draining until the queue is empty would,
        under steady traffic, write a batch of a few rows after every other (one transaction each,
        back to back) instead of one batch per ``flush_ms``."""
        async with self._flush_lock:
            pending, self._queue = self._queue, []
            for start in range(0, len(pending), self.batch_size):
                batch = pending[start : start + self.batch_size]
                try:
                    await self.writer.insert_many("audit_log", batch)
                except Exception:  # one row refused for its content: write them one by one
                    for values in batch:
                        await self._write_one(values)

    async def close(self) -> None:
        """Stop the flusher and write what is still queued (server shutdown)."""
        self._closed = True
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()

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
        await self.flush()
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
        await self.flush()
        async with self.db.connect() as conn:
            return int((await conn.execute(self.error_count_query(since))).scalar_one())
