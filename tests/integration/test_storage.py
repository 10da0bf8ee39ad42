"""Storage on both backends: migrations, the schema the code expects, constraints, the audit trail, health."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from nt_mcp.infra import migrate
from nt_mcp.infra.audit import AuditLog, AuditRow
from nt_mcp.infra.db import Database
from nt_mcp.infra.schema import metadata, orders
from nt_mcp.infra.spool import DurableWriter, Spool
from tests.migrations import head_revision

EXPECTED_TABLES = {
    "orders",
    "fills",
    "positions_snapshots",
    "backtests",
    "strategy_runs",
    "audit_log",
    "dead_letters",
    "paper_accounts",
    "paper_positions",
}


async def test_migrations_create_every_table_and_match_the_code(db: Database) -> None:
    assert await migrate.current_revision(db) == head_revision()
    async with db.connect() as conn:
        tables = await conn.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
        diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), metadata))
    assert tables >= EXPECTED_TABLES
    # Nothing differs between the migrated database and the metadata the queries are written against.
    # (Index differences are PostgreSQL performance indexes from the index file, not part of metadata.)
    assert [d for d in diff if d[0] not in ("add_index", "remove_index")] == []


async def test_upgrade_twice_is_harmless(db: Database) -> None:
    await migrate.upgrade(db)
    assert await migrate.current_revision(db) == head_revision()


def _order(client_order_id: str) -> dict[str, object]:
    now = datetime.now(UTC)
    return {
        "id": uuid.uuid4().hex,
        "client_order_id": client_order_id,
        "principal": "alice",
        "broker": "paper",
        "mode": "paper",
        "symbol": "AAPL",
        "side": "buy",
        "order_type": "limit",
        "time_in_force": "day",
        "qty": Decimal("1.5"),
        "limit_price": Decimal("187.1234"),
        "status": "new",
        "created_at": now,
        "updated_at": now,
    }


async def test_client_order_id_is_unique_and_decimals_round_trip(db: Database) -> None:
    async def insert(conn: sa.ext.asyncio.AsyncConnection) -> None:
        await conn.execute(orders.insert().values(**_order("nt-abc")))

    await db.transaction(insert)
    with pytest.raises(sa.exc.IntegrityError):
        await db.transaction(insert)
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(orders).where(orders.c.client_order_id == "nt-abc"))).mappings().one()
    assert Decimal(row["limit_price"]) == Decimal("187.1234")
    assert Decimal(row["qty"]) == Decimal("1.5")


async def test_audit_trail_is_per_principal_and_newest_first(db: Database, tmp_path: Path) -> None:
    audit = AuditLog(db, DurableWriter(db, Spool(tmp_path / "spool")))
    base = datetime.now(UTC) - timedelta(minutes=10)
    for i, (who, outcome) in enumerate([("alice", "ok"), ("bob", "ok"), ("alice", "RATE_LIMITED"), ("alice", "ok")]):
        row = AuditRow(
            base + timedelta(seconds=i),
            who,
            "ping",
            outcome,
            1.0,
            f"c{i}",
            {"echo": str(i), "api_key": "should-not-be-stored"},
        )
        assert await audit.record(row)
    recent = await audit.recent("alice", limit=2)
    assert [r.correlation_id for r in recent] == ["c3", "c2"]
    assert recent[0].arguments == {"echo": "3", "api_key": "[REDACTED]"}
    assert await audit.error_count_since(base - timedelta(seconds=1)) == 1
    assert await audit.error_count_since(base + timedelta(seconds=5)) == 0


async def test_health_reports_backend_and_latency(db: Database) -> None:
    health = await db.health()
    assert health.ok and health.detail == "ok"
    assert health.backend == ("postgresql" if db.url.startswith("postgresql") else "sqlite")


async def test_health_reports_an_unreachable_database_without_raising(tmp_path: object) -> None:
    from tests.conftest import make_settings
    from tests.servers import free_port

    settings = make_settings(
        tmp_path,
        database_url=f"postgresql://nobody@127.0.0.1:{free_port()}/none",  # type: ignore[arg-type]
        db_pool_timeout_s=2,
        db_connect_retries=1,
    )
    database = Database(settings)
    health = await database.health()
    assert not health.ok and health.backend == "postgresql"
    await database.dispose()
