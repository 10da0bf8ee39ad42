"""Bring a database to the current schema: Alembic migrations, then (PostgreSQL) the performance indexes.

`nt-mcp db upgrade` calls `upgrade`; `nt-mcp serve` calls `ensure_current` at start when
``NT_AUTO_MIGRATE`` is on (the default), so a zero-configuration SQLite file is ready on first run:
it reads the ``alembic_version`` row and imports and runs Alembic only when the database is behind
the head revision (read from the migration files' ``revision``/``down_revision`` lines).
The index file is `sql/indexes/performance_indexes.sql`: idempotent ``CREATE INDEX IF NOT EXISTS``
statements, each serving a query named in its comment.

Replicas starting together on one PostgreSQL database migrate one at a time: each migration (and
the index file) runs in a transaction that first takes a transaction-level advisory lock
(`MIGRATION_LOCK`); the one that waited then finds the database at head (Alembic reads the version
after the lock) and the indexes there. Without it the second replica's ``CREATE TABLE`` fails on a
duplicate catalog row and that replica does not start.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from nt_mcp.infra.db import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
INDEX_FILE_NAME = "performance_indexes.sql"
MIGRATION_LOCK = 0x6E742D6D6370  # "nt-mcp": the advisory lock key that serialises migrations


def index_file() -> Path:
    """The index file: `sql/indexes/` in a source checkout, `nt_mcp/_sql/indexes/` in a wheel."""
    checkout = Path(__file__).resolve().parents[3] / "sql" / "indexes" / INDEX_FILE_NAME
    if checkout.is_file():
        return checkout
    return Path(str(resources.files("nt_mcp").joinpath("_sql", "indexes", INDEX_FILE_NAME)))


def index_statements() -> list[str]:
    """The ``CREATE INDEX`` statements of the index file, comments stripped."""
    text = "\n".join(line.split("--", 1)[0] for line in index_file().read_text().splitlines())
    return [stmt.strip() for stmt in text.split(";") if stmt.strip()]


_REVISION_LINE = re.compile(r'^(down_revision|revision)\s*=\s*["\']([^"\']+)["\']', re.MULTILINE)


def head_revision() -> str:
    """The migration chain's head: the one revision no other migration names as its ``down_revision``."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for kind, value in _REVISION_LINE.findall(path.read_text()):
            (revisions if kind == "revision" else parents).add(value)
    heads = revisions - parents
    if len(heads) != 1:
        raise RuntimeError(f"the migration chain must have one head, found {sorted(heads)}")
    return heads.pop()


def _alembic_upgrade(connection: Connection, revision: str) -> None:
    from alembic import command  # imported only when migrating (the handshake does not pay for it)
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def _serialise(db: Database, conn: AsyncConnection) -> None:
    """On PostgreSQL, wait for any other process's migration (the lock is released at commit)."""
    if db.backend == "postgresql":
        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})


async def _apply_indexes(db: Database) -> list[str]:
    applied = []
    async with db.engine.begin() as conn:
        await _serialise(db, conn)
        for statement in index_statements():
            await conn.execute(sa.text(statement))
            applied.append(statement.split(" ON ")[0])
    return applied


async def upgrade(db: Database, revision: str = "head") -> list[str]:
    """Migrate to ``revision``; on PostgreSQL also apply the index file. Returns what was applied."""
    applied = [f"alembic upgrade {revision}"]
    async with db.engine.begin() as conn:
        await _serialise(db, conn)
        await conn.run_sync(_alembic_upgrade, revision)
    if db.backend == "postgresql":
        applied += await _apply_indexes(db)
    return applied


async def ensure_current(db: Database) -> list[str]:
    """`upgrade` when the database is not at the head revision; on PostgreSQL the (idempotent) index
    file is applied either way. Returns what was applied."""
    if await current_revision(db) != head_revision():
        return await upgrade(db)
    return await _apply_indexes(db) if db.backend == "postgresql" else []


async def current_revision(db: Database) -> str | None:
    """The revision the database is at, or None before the first migration."""
    async with db.engine.connect() as conn:
        has_table = await conn.run_sync(lambda c: sa.inspect(c).has_table("alembic_version"))
        if not has_table:
            return None
        return (await conn.execute(sa.text("SELECT version_num FROM alembic_version"))).scalar_one_or_none()
