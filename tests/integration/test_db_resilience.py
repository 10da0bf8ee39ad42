"""A unit of work survives a lost PostgreSQL connection: the pool's dead socket is retried, once committed."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from nt_mcp.infra import migrate
from nt_mcp.infra.db import Database
from nt_mcp.infra.schema import dead_letters
from tests.conftest import make_settings


async def test_transaction_retries_after_the_server_killed_the_connection(
    pg_url: str, pg_admin_url: str, tmp_path: Path
) -> None:
    # pre-ping off, so the pool really hands out the dead connection and the retry is what saves the call
    settings = make_settings(
        tmp_path,
        database_url=pg_url,
        db_pool_pre_ping=False,
        db_pool_size=1,
        db_max_overflow=0,
        db_connect_retries=3,
    )
    db = Database(settings)
    await migrate.upgrade(db)
    attempts = 0

    async def write(conn: sa.ext.asyncio.AsyncConnection) -> int:
        nonlocal attempts
        attempts += 1
        await conn.execute(
            dead_letters.insert().values(kind="test", payload="{}", error="-", attempts=0, created_at=sa.func.now())
        )
        return int((await conn.execute(sa.select(sa.func.count()).select_from(dead_letters))).scalar_one())

    assert await db.transaction(write) == 1  # the pool now holds one open connection
    admin = await asyncpg.connect(pg_admin_url)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
            make_url(pg_url).database,
        )
    finally:
        await admin.close()
    assert killed == 1
    attempts = 0
    assert await db.transaction(write) == 2  # exactly one more row: the failed attempt did not commit
    assert attempts == 2
    await db.dispose()
