"""The database: one SQLAlchemy 2 Core async engine, SQLite by default, PostgreSQL when configured.

- SQLite (embedded default): a file in the user data dir, WAL journal, ``busy_timeout`` 5 s,
  foreign keys on. One writer at a time is SQLite's rule; WAL lets readers run beside it.
- PostgreSQL (``NT_DATABASE_URL``): asyncpg behind SQLAlchemy's pool; size, overflow, timeout,
  pre-ping and recycle come from Settings.

`Database.transaction` retries a unit of work when the connection was lost (the server
restarted, the pool handed out a dead socket) with exponential backoff, up to
``NT_DB_CONNECT_RETRIES`` attempts; the work runs in one transaction, so a retried unit either
committed once or not at all. Statements slower than ``NT_DB_SLOW_QUERY_MS`` are logged
(the SQL text, never the parameters).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from nt_mcp.config import Settings
from nt_mcp.errors import DatabaseError
from nt_mcp.infra.observability import DB_POOL, SLOW_QUERIES

log = logging.getLogger(__name__)
T = TypeVar("T")


# SQLSTATEs that say "the server cannot serve you right now", whatever the statement was:
# class 08 (connection exception), 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect
# now (shutting down or starting up), 53300 too many connections, 58000/58030 system/IO error.
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "58000", "58030"})
# SQLSTATE classes of a statement that can never succeed as written: 22 data exception (a NUL
# byte, an untranslatable character, a value too long), 23 integrity constraint, 42 syntax or
# undefined object.
_PERMANENT_SQLSTATE_CLASSES = frozenset({"22", "23", "42"})
# SQLite primary result codes of a database that is busy or cannot be opened (sqlite3's sqlite_errorcode).
_SQLITE_UNAVAILABLE = frozenset({5, 6, 10, 14})  # BUSY, LOCKED, IOERR, CANTOPEN


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and what it wraps: SQLAlchemy's ``.orig``, then causes and contexts (no loops)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not s for s in seen) and len(seen) < 10:
        seen.append(current)
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)
    return seen


def sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE an error carries (asyncpg's ``sqlstate``, the DBAPI's ``pgcode``), if any."""
    for item in _chain(error):
        for attribute in ("sqlstate", "pgcode"):
            value = getattr(item, attribute, None)
            if isinstance(value, str) and len(value) == 5:
                return value
    return None


def is_connection_loss(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached now (retry later), as opposed to a
    statement that failed. Decided by SQLSTATE and exception class, never by message text:

    - SQLAlchemy says the connection was invalidated, or its pool timed out waiting for a connection;
    - SQLSTATE class 08, or 57P01/57P02/57P03 (shutdown, crash, "cannot connect now" while the server
      shuts down or starts up), 53300 (too many connections), 58000/58030;
    - asyncpg's connection errors (`PostgresConnectionError`, `ConnectionDoesNotExistError`,
      `CannotConnectNowError`, ...), OS-level errors (refused, reset, timed out);
    - SQLite busy, locked, I/O error or cannot open (``sqlite_errorcode``).
    """
    import asyncpg

    if isinstance(error, exc.DBAPIError) and error.connection_invalidated:
        return True
    for item in _chain(error):
        if isinstance(item, exc.TimeoutError):  # the pool had no connection to give within its timeout
            return True
        if isinstance(
            item,
            asyncpg.exceptions.PostgresConnectionError
            | asyncpg.exceptions.ConnectionDoesNotExistError
            | asyncpg.exceptions.CannotConnectNowError
            | asyncpg.exceptions.TooManyConnectionsError
            | asyncpg.exceptions.AdminShutdownError
            | asyncpg.exceptions.CrashShutdownError,
        ):
            return True
        if isinstance(item, OSError):  # ConnectionRefusedError, ConnectionResetError, TimeoutError, ...
            return True
        code = getattr(item, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_UNAVAILABLE:
            return True
    state = sqlstate(error)
    return state is not None and (state.startswith("08") or state in _UNAVAILABLE_SQLSTATES)


def is_permanent(error: BaseException) -> bool:
    """Whether the statement behind ``error`` can never succeed as written (retrying cannot help):
    SQLSTATE classes 22, 23, 42, a SQLAlchemy integrity or programming error, or text the driver
    cannot even encode (a lone surrogate)."""
    if is_connection_loss(error):
        return False
    state = sqlstate(error)
    if state is not None and state[:2] in _PERMANENT_SQLSTATE_CLASSES:
        return True
    return any(
        isinstance(item, exc.IntegrityError | exc.ProgrammingError | exc.DataError | UnicodeError)
        for item in _chain(error)
    )


_is_connection_loss = is_connection_loss  # the name the retry policy below uses


@dataclass(frozen=True)
class Health:
    ok: bool
    backend: str
    latency_ms: float
    detail: str


class Database:
    """The engine plus the few things every caller needs: transactions, health, the backend name."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url = settings.sqlalchemy_url
        self.backend = "postgresql" if self.url.startswith("postgresql") else "sqlite"
        self.engine: AsyncEngine = self._create_engine()
        self._install_slow_query_log()

    def _create_engine(self) -> AsyncEngine:
        s = self.settings
        if self.backend == "sqlite":
            database = make_url(self.url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_async_engine(self.url, connect_args={"timeout": 5})

            @event.listens_for(engine.sync_engine, "connect")
            def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
                cursor = dbapi_connection.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA busy_timeout=5000")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

            return engine
        return create_async_engine(
            self.url,
            pool_size=s.db_pool_size,
            max_overflow=s.db_max_overflow,
            pool_timeout=s.db_pool_timeout_s,
            pool_recycle=s.db_pool_recycle_s,
            pool_pre_ping=s.db_pool_pre_ping,
            connect_args={"timeout": s.db_pool_timeout_s, "server_settings": {"application_name": "nt-mcp"}},
        )

    def _install_slow_query_log(self) -> None:
        threshold_s = self.settings.db_slow_query_ms / 1000.0

        @event.listens_for(self.engine.sync_engine, "before_cursor_execute")
        def _start(conn: Any, _cursor: Any, _stmt: str, _params: Any, _ctx: Any, _many: bool) -> None:
            conn.info.setdefault("nt_query_start", []).append(time.perf_counter())

        @event.listens_for(self.engine.sync_engine, "after_cursor_execute")
        def _stop(conn: Any, _cursor: Any, statement: str, _params: Any, _ctx: Any, _many: bool) -> None:
            elapsed = time.perf_counter() - conn.info["nt_query_start"].pop()
            if elapsed >= threshold_s:
                SLOW_QUERIES.inc()
                log.warning("slow query", extra={"duration_ms": round(elapsed * 1000, 1), "sql": statement[:500]})

    async def transaction(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` in one transaction, retrying it when the connection was lost.

        Raises `DatabaseError` (retryable) when the database stays unreachable.
        """
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.settings.db_connect_retries),
            wait=wait_exponential_jitter(multiplier=0.05, max=1.0),
            retry=retry_if_exception(_is_connection_loss),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    async with self.engine.begin() as conn:
                        return await work(conn)
        except Exception as error:
            if _is_connection_loss(error):
                raise DatabaseError(f"The {self.backend} database is unreachable; try again shortly.") from error
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A plain connection for read-only work (no retry, no transaction management).
        A lost or refused connection becomes `DatabaseError` (retryable)."""
        try:
            async with self.engine.connect() as conn:
                yield conn
        except Exception as error:
            if _is_connection_loss(error):
                raise DatabaseError(f"The {self.backend} database is unreachable; try again shortly.") from error
            raise

    async def health(self) -> Health:
        """``SELECT 1`` round trip; never raises."""
        started = time.perf_counter()
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
            ok, detail = True, "ok"
        except Exception as error:  # health reports every failure; it must not raise
            ok, detail = False, type(error).__name__
        self._record_pool_stats()
        return Health(ok, self.backend, round((time.perf_counter() - started) * 1000, 2), detail)

    def _record_pool_stats(self) -> None:
        """Connections checked out, idle in the pool, and open beyond ``pool_size`` (SQLAlchemy's
        ``overflow()`` counts from ``-pool_size`` while the pool is not full: clamped at 0)."""
        pool = self.engine.pool
        for state in ("checkedout", "checkedin", "overflow"):
            reader = getattr(pool, state, None)
            if callable(reader):
                DB_POOL.labels(state).set(max(0, reader()))

    async def dispose(self) -> None:
        await self.engine.dispose()
