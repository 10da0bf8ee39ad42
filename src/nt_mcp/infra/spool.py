"""Writes that must not be lost, kept on local disk while the database is unreachable, then replayed.

`DurableWriter.insert/insert_many/update` try the database first. When it is unreachable (`DatabaseError`)
the write goes to the spool: one JSON file per write in ``<NT_DATA_HOME>/spool/``, written to a
temporary name, fsynced, renamed, and the directory fsynced, so a write the caller was told is
spooled survives a crash of the server. File names start with a nanosecond timestamp, so the
spool replays in the order writes were made.

`Replayer.replay_once` applies spooled writes in order. It stops at the first write the database
still cannot take (unreachable: try again later, order kept). A write that fails for another
reason is retried on later rounds; after ``NT_SPOOL_MAX_ATTEMPTS`` it moves to the
``dead_letters`` table with its error, for `nt-mcp dlq list|replay`. A write that violates a
constraint (say, an order row that exists already) goes to ``dead_letters`` at once: retrying
cannot fix it, and dropping it silently would lose it.

Redis Streams would be the other choice for the spool; a local file is used because the spool
must work precisely when shared infrastructure is failing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nt_mcp.errors import DatabaseError
from nt_mcp.infra.db import Database
from nt_mcp.infra.observability import SPOOL_DEPTH, SPOOL_REPLAYS
from nt_mcp.infra.schema import dead_letters, metadata

log = logging.getLogger(__name__)


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot spool a {type(value).__name__}")


def _revive(table: sa.Table, values: dict[str, Any]) -> dict[str, Any]:
    """JSON values back to the column types: ISO strings to datetimes, numeric strings to Decimal."""
    revived: dict[str, Any] = {}
    for name, value in values.items():
        column_type = table.c[name].type
        if isinstance(value, str) and isinstance(column_type, sa.DateTime):
            revived[name] = datetime.fromisoformat(value)
        elif isinstance(value, str) and isinstance(column_type, sa.Numeric):
            revived[name] = Decimal(value)
        else:
            revived[name] = value
    return revived


@dataclass(frozen=True)
class SpoolEntry:
    path: Path
    op: str  # "insert" | "update"
    table: str
    values: dict[str, Any]
    key: dict[str, Any] | None
    attempts: int
    last_error: str | None
    spooled_at: str

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.path.stem,
            "op": self.op,
            "table": self.table,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "spooled_at": self.spooled_at,
        }


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        SPOOL_DEPTH.set(len(self._files()))

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("*.json"))

    def _write(self, path: Path, body: dict[str, Any]) -> None:
        temporary = path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(body, handle, default=_to_json)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def append(self, op: str, table: str, values: dict[str, Any], key: dict[str, Any] | None = None) -> Path:
        """Durably record one write; returns its file."""
        path = self.directory / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        body = {
            "op": op,
            "table": table,
            "values": values,
            "key": key,
            "attempts": 0,
            "last_error": None,
            "spooled_at": datetime.now(UTC).isoformat(),
        }
        self._write(path, body)
        SPOOL_DEPTH.set(len(self._files()))
        log.warning("database write spooled", extra={"table": table, "op": op, "spool_file": path.name})
        return path

    def pending(self) -> list[SpoolEntry]:
        entries = []
        for path in self._files():
            body = json.loads(path.read_text(encoding="utf-8"))
            entries.append(
                SpoolEntry(
                    path,
                    body["op"],
                    body["table"],
                    body["values"],
                    body.get("key"),
                    body["attempts"],
                    body.get("last_error"),
                    body["spooled_at"],
                )
            )
        return entries

    def ack(self, entry: SpoolEntry) -> None:
        entry.path.unlink(missing_ok=True)
        SPOOL_DEPTH.set(len(self._files()))

    def record_failure(self, entry: SpoolEntry, error: str) -> int:
        attempts = entry.attempts + 1
        body = {
            "op": entry.op,
            "table": entry.table,
            "values": entry.values,
            "key": entry.key,
            "attempts": attempts,
            "last_error": error,
            "spooled_at": entry.spooled_at,
        }
        self._write(entry.path, body)
        return attempts


async def apply_write(
    conn: AsyncConnection, op: str, table_name: str, values: dict[str, Any], key: dict[str, Any] | None
) -> None:
    """Apply one (possibly spooled) write. ``insert_many`` carries its rows as ``{"rows": [...]}``."""
    table = metadata.tables[table_name]
    if op == "insert":
        await conn.execute(table.insert().values(**_revive(table, values)))
    elif op == "insert_many":
        await conn.execute(table.insert(), [_revive(table, row) for row in values["rows"]])
    elif op == "update":
        if not key:
            raise ValueError("an update needs a key")
        where = [table.c[name] == value for name, value in _revive(table, key).items()]
        await conn.execute(table.update().where(*where).values(**_revive(table, values)))
    else:
        raise ValueError(f"unknown spool op {op!r}")


class DurableWriter:
    """Database writes that fall back to the spool when the database is unreachable."""

    def __init__(self, db: Database, spool: Spool) -> None:
        self.db = db
        self.spool = spool

    async def _write(self, op: str, table: str, values: dict[str, Any], key: dict[str, Any] | None) -> bool:
        """True when written to the database now, False when spooled for replay."""
        try:
            await self.db.transaction(lambda conn: apply_write(conn, op, table, values, key))
            return True
        except DatabaseError:
            await asyncio.to_thread(self.spool.append, op, table, values, key)
            return False

    async def insert(self, table: str, values: dict[str, Any]) -> bool:
        return await self._write("insert", table, values, None)

    async def update(self, table: str, key: dict[str, Any], values: dict[str, Any]) -> bool:
        return await self._write("update", table, values, key)

    async def insert_many(self, table: str, rows: list[dict[str, Any]]) -> bool:
        """Several rows of one table in one transaction; spooled as one write (all or none)."""
        if not rows:
            return True
        return await self._write("insert_many", table, {"rows": rows}, None)


@dataclass(frozen=True)
class ReplayReport:
    replayed: int
    dead_lettered: int
    remaining: int


class Replayer:
    def __init__(self, db: Database, spool: Spool, max_attempts: int) -> None:
        self.db = db
        self.spool = spool
        self.max_attempts = max_attempts
        self._lock = asyncio.Lock()

    async def replay_once(self) -> ReplayReport:
        async with self._lock:
            replayed = dead = 0
            for entry in await asyncio.to_thread(self.spool.pending):
                try:
                    await self.db.transaction(
                        lambda conn, e=entry: apply_write(conn, e.op, e.table, e.values, e.key)  # type: ignore[misc]
                    )
                except DatabaseError:
                    break  # still unreachable: keep the order, try again later
                except sa.exc.IntegrityError as error:
                    message = f"constraint violated: {error.orig}"[:2000]
                    await self._dead_letter(entry, message, entry.attempts + 1)
                    dead += 1
                    continue
                except Exception as error:
                    message = f"{type(error).__name__}: {error}"[:2000]
                    attempts = await asyncio.to_thread(self.spool.record_failure, entry, message)
                    SPOOL_REPLAYS.labels(entry.table, "failed").inc()
                    if attempts < self.max_attempts:
                        break
                    await self._dead_letter(entry, message, attempts)
                    dead += 1
                    continue
                await asyncio.to_thread(self.spool.ack, entry)
                SPOOL_REPLAYS.labels(entry.table, "replayed").inc()
                replayed += 1
            remaining = len(await asyncio.to_thread(self.spool.pending))
        if replayed or dead:
            log.warning("spool replayed", extra={"replayed": replayed, "dead_lettered": dead, "remaining": remaining})
        return ReplayReport(replayed, dead, remaining)

    async def _dead_letter(self, entry: SpoolEntry, error: str, attempts: int) -> None:
        payload = {
            "op": entry.op,
            "table": entry.table,
            "values": entry.values,
            "key": entry.key,
            "spooled_at": entry.spooled_at,
        }

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(
                dead_letters.insert().values(
                    kind=f"{entry.op}:{entry.table}",
                    payload=payload,
                    error=error,
                    attempts=attempts,
                    created_at=datetime.now(UTC),
                )
            )

        await self.db.transaction(insert)
        await asyncio.to_thread(self.spool.ack, entry)
        SPOOL_REPLAYS.labels(entry.table, "dead_lettered").inc()

    async def run_forever(self, interval_s: float) -> None:
        """Replay every ``interval_s`` while the server runs."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                if self.spool.pending():
                    await self.replay_once()
            except Exception:
                log.exception("spool replay round failed")

    @staticmethod
    def unresolved_query(limit: int) -> sa.Select[Any]:
        return (
            sa.select(dead_letters).where(dead_letters.c.resolved_at.is_(None)).order_by(dead_letters.c.id).limit(limit)
        )

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """Unresolved dead letters, oldest first (index ix_dead_letters_unresolved)."""
        async with self.db.connect() as conn:
            rows = (await conn.execute(self.unresolved_query(limit))).mappings().all()
        return [dict(r) for r in rows]

    async def retry_dead_letters(self) -> tuple[int, int]:
        """Apply each unresolved dead letter again; mark the ones that now succeed resolved."""
        fixed = failed = 0
        for letter in await self.dead_letters(limit=10_000):
            p = letter["payload"]

            async def apply(conn: AsyncConnection, p: dict[str, Any] = p, letter_id: int = letter["id"]) -> None:
                await apply_write(conn, p["op"], p["table"], p["values"], p.get("key"))
                await conn.execute(
                    dead_letters.update().where(dead_letters.c.id == letter_id).values(resolved_at=datetime.now(UTC))
                )

            try:
                await self.db.transaction(apply)
                fixed += 1
            except Exception:
                failed += 1
        return fixed, failed
