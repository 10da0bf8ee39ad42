"""Writes that must not be lost, kept on local disk while the database is unreachable, then replayed.

`DurableWriter.insert/insert_many/update` try the database first. When it is unreachable (`DatabaseError`)
the write goes to the spool: one JSON file per write in ``<NT_DATA_HOME>/spool/``, written to a
temporary name, fsynced, renamed, and the directory fsynced, so a write the caller was told is
spooled survives a crash of the server. File names start with a nanosecond timestamp, so the
spool replays in the order writes were made.

Each write belongs to a *stream*: the row it touches (``orders:{"client_order_id": ...}`` for an
update by key, ``<table>:<primary key>`` for an insert that names its key; a caller may name the
stream itself, e.g. one order). Order is kept within a stream, not across unrelated rows: audit rows
(no key) are independent of each other and of every order.

`Replayer.replay_once` applies spooled writes oldest first. When the database is unreachable it
stops (try again later, order kept). A write that fails for another reason never holds up the rest:

- a write that can never succeed as written (SQLSTATE class 22/23/42: a NUL byte, a lone
  surrogate, a constraint violation, an unknown column; see `infra.db.is_permanent`) moves to
  ``dead_letters`` at once;
- any other failure is retried on later rounds (later writes of the same stream wait behind it,
  everything else goes on); after ``NT_SPOOL_MAX_ATTEMPTS`` it moves to ``dead_letters``.

A dead letter keeps the write as ASCII JSON text (``\u0000`` as six characters; see
`infra.storable.ascii_json`) and the error made storable (`infra.storable.safe_text`), so it always
stores. Should the database refuse even that, the spool file moves to ``spool/dead/`` on local disk.
`nt-mcp dlq list` shows the spool, the dead letters and the local ones; `nt-mcp dlq replay` retries.
Listing the spool tolerates a replay deleting files at the same time.

Redis Streams would be the other choice for the spool; a local file is used because the spool
must work precisely when shared infrastructure is failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nt_mcp.errors import DatabaseError
from nt_mcp.infra.db import Database, is_permanent, sqlstate
from nt_mcp.infra.observability import SPOOL_DEPTH, SPOOL_REPLAYS
from nt_mcp.infra.schema import dead_letters, metadata
from nt_mcp.infra.storable import ascii_json, safe_text

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


def stream_of(op: str, table: str, values: dict[str, Any], key: dict[str, Any] | None) -> str | None:
    """The row a write touches, as a stream name; None for a write independent of every other
    (an insert whose key the database assigns, like an audit row)."""
    if op == "update" and key:
        return f"{table}:{ascii_json(sorted(key.items()))}"
    names = [c.name for c in metadata.tables[table].primary_key.columns] if table in metadata.tables else []
    if names and all(values.get(name) is not None for name in names):
        return f"{table}:{ascii_json([[name, values[name]] for name in names])}"
    return None


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
    stream: str | None = None

    def body(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "table": self.table,
            "values": self.values,
            "key": self.key,
            "stream": self.stream,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "spooled_at": self.spooled_at,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.path.stem,
            "op": self.op,
            "table": self.table,
            "stream": self.stream,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "spooled_at": self.spooled_at,
        }


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.dead_directory = directory / "dead"
        self.unreadable_directory = directory / "unreadable"
        directory.mkdir(parents=True, exist_ok=True)
        SPOOL_DEPTH.set(self.count())

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("*.json"))

    def count(self) -> int:
        """How many writes wait (cheap: no file is read)."""
        return len(self._files())

    def _write(self, path: Path, body: dict[str, Any]) -> None:
        temporary = path.with_suffix(".tmp")
        with open(temporary, "w", encoding="utf-8") as handle:
            json.dump(body, handle, default=_to_json)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def append(
        self,
        op: str,
        table: str,
        values: dict[str, Any],
        key: dict[str, Any] | None = None,
        stream: str | None = None,
    ) -> Path:
        """Durably record one write; returns its file. ``stream`` defaults to `stream_of` the write."""
        path = self.directory / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"
        entry = SpoolEntry(
            path, op, table, values, key, 0, None, datetime.now(UTC).isoformat(),
            stream if stream is not None else stream_of(op, table, values, key),
        )  # fmt: skip
        self._write(path, entry.body())
        SPOOL_DEPTH.set(self.count())
        log.warning("database write spooled", extra={"table": table, "op": op, "spool_file": path.name})
        return path

    def _read(self, path: Path) -> SpoolEntry | None:
        """The entry in ``path``; None when the file is gone (a replay took it) or unreadable (moved aside)."""
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            return SpoolEntry(
                path,
                body["op"],
                body["table"],
                body["values"],
                body.get("key"),
                int(body["attempts"]),
                body.get("last_error"),
                body["spooled_at"],
                body.get("stream"),
            )
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):  # not a spool entry: keep it aside for a person
            self.unreadable_directory.mkdir(exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, self.unreadable_directory / path.name)
            log.error("unreadable spool file moved aside", extra={"spool_file": path.name})
            return None

    def pending(self) -> list[SpoolEntry]:
        """The waiting writes, oldest first. Files a concurrent replay deletes meanwhile are skipped."""
        return [entry for entry in map(self._read, self._files()) if entry is not None]

    def ack(self, entry: SpoolEntry) -> None:
        entry.path.unlink(missing_ok=True)
        SPOOL_DEPTH.set(self.count())

    def record_failure(self, entry: SpoolEntry, error: str) -> int:
        attempts = entry.attempts + 1
        if entry.path.exists():  # a concurrent replay may have applied it already
            self._write(entry.path, replace(entry, attempts=attempts, last_error=error).body())
        return attempts

    def bury(self, entry: SpoolEntry, error: str, attempts: int) -> Path:
        """Keep a write the database refused even as a dead letter in ``spool/dead/`` (local dead letter)."""
        self.dead_directory.mkdir(exist_ok=True)
        target = self.dead_directory / entry.path.name
        self._write(target, replace(entry, attempts=attempts, last_error=error).body())
        self.ack(entry)
        return target

    def local_dead_letters(self) -> list[SpoolEntry]:
        if not self.dead_directory.is_dir():
            return []
        return [e for e in map(self._read, sorted(self.dead_directory.glob("*.json"))) if e is not None]

    def unreadable(self) -> list[Path]:
        return sorted(self.unreadable_directory.glob("*")) if self.unreadable_directory.is_dir() else []


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

    async def _write(
        self, op: str, table: str, values: dict[str, Any], key: dict[str, Any] | None, stream: str | None
    ) -> bool:
        """True when written to the database now, False when spooled for replay."""
        try:
            await self.db.transaction(lambda conn: apply_write(conn, op, table, values, key))
            return True
        except DatabaseError:
            await asyncio.to_thread(self.spool.append, op, table, values, key, stream)
            return False

    async def insert(self, table: str, values: dict[str, Any], *, stream: str | None = None) -> bool:
        return await self._write("insert", table, values, None, stream)

    async def insert_many(self, table: str, rows: list[dict[str, Any]], *, stream: str | None = None) -> bool:
        """Several rows of one table in one transaction; spooled as one write (all or none)."""
        if not rows:
            return True
        return await self._write("insert_many", table, {"rows": rows}, None, stream)

    async def update(
        self, table: str, key: dict[str, Any], values: dict[str, Any], *, stream: str | None = None
    ) -> bool:
        return await self._write("update", table, values, key, stream)

    async def keep(self, op: str, table: str, values: dict[str, Any], key: dict[str, Any] | None = None) -> None:
        """Spool a write the database refused for its content, so it ends in ``dead_letters`` (never lost)."""
        await asyncio.to_thread(self.spool.append, op, table, values, key)


def _failure(error: BaseException) -> str:
    """Why a write failed, for the dead letter: the driver's words (not SQLAlchemy's statement dump)."""
    cause = error.orig if isinstance(error, sa.exc.DBAPIError) and error.orig is not None else error
    state = sqlstate(error)
    prefix = "constraint violated" if isinstance(error, sa.exc.IntegrityError) else type(cause).__name__
    text = f"{prefix}{f' (SQLSTATE {state})' if state else ''}: {cause}"
    return safe_text(text)[:2000]


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
        """One pass over the spool, oldest first (see the module docstring for what happens to failures)."""
        async with self._lock:
            replayed = dead = 0
            blocked: set[str] = set()  # streams whose earlier write failed this round: keep their order
            for entry in await asyncio.to_thread(self.spool.pending):
                if entry.stream is not None and entry.stream in blocked:
                    continue
                try:
                    await self.db.transaction(
                        lambda conn, e=entry: apply_write(conn, e.op, e.table, e.values, e.key)  # type: ignore[misc]
                    )
                except DatabaseError:
                    break  # still unreachable: keep the order, try again later
                except Exception as error:
                    message = _failure(error)
                    permanent = is_permanent(error)
                    attempts = entry.attempts + 1
                    if not permanent:
                        attempts = await asyncio.to_thread(self.spool.record_failure, entry, message)
                        SPOOL_REPLAYS.labels(entry.table, "failed").inc()
                    if permanent or attempts >= self.max_attempts:
                        if not await self._dead_letter(entry, message, attempts):
                            break  # the database went away meanwhile
                        dead += 1
                    elif entry.stream is not None:
                        blocked.add(entry.stream)
                    continue
                await asyncio.to_thread(self.spool.ack, entry)
                SPOOL_REPLAYS.labels(entry.table, "replayed").inc()
                replayed += 1
            remaining = await asyncio.to_thread(self.spool.count)
        if replayed or dead:
            log.warning("spool replayed", extra={"replayed": replayed, "dead_lettered": dead, "remaining": remaining})
        return ReplayReport(replayed, dead, remaining)

    async def _dead_letter(self, entry: SpoolEntry, error: str, attempts: int) -> bool:
        """Move ``entry`` to ``dead_letters`` (or, refused even there, to ``spool/dead/``).
        False when the database is unreachable: the entry stays in the spool."""
        payload = {
            "op": entry.op,
            "table": entry.table,
            "values": entry.values,
            "key": entry.key,
            "stream": entry.stream,
            "spooled_at": entry.spooled_at,
        }

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(
                dead_letters.insert().values(
                    kind=safe_text(f"{entry.op}:{entry.table}")[:48],
                    payload=ascii_json(payload),
                    error=error,
                    attempts=attempts,
                    created_at=datetime.now(UTC),
                )
            )

        try:
            await self.db.transaction(insert)
        except DatabaseError:
            return False
        except Exception:
            log.exception("dead letter refused by the database; kept on local disk", extra={"table": entry.table})
            await asyncio.to_thread(self.spool.bury, entry, error, attempts)
        else:
            await asyncio.to_thread(self.spool.ack, entry)
        SPOOL_REPLAYS.labels(entry.table, "dead_lettered").inc()
        return True

    async def run_forever(self, interval_s: float) -> None:
        """Replay every ``interval_s`` while the server runs."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                if self.spool.count():
                    await self.replay_once()
            except Exception:
                log.exception("spool replay round failed")

    @staticmethod
    def unresolved_query(limit: int) -> sa.Select[Any]:
        return (
            sa.select(dead_letters).where(dead_letters.c.resolved_at.is_(None)).order_by(dead_letters.c.id).limit(limit)
        )

    async def dead_letters(self, limit: int = 100) -> list[dict[str, Any]]:
        """Unresolved dead letters, oldest first (index ix_dead_letters_unresolved); ``payload`` parsed."""
        async with self.db.connect() as conn:
            rows = (await conn.execute(self.unresolved_query(limit))).mappings().all()
        letters = []
        for row in rows:
            letter = dict(row)
            if isinstance(letter["payload"], str):
                letter["payload"] = json.loads(letter["payload"])
            letters.append(letter)
        return letters

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
