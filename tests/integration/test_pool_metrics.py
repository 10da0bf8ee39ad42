"""The PostgreSQL pool gauges read what a person expects: no negative overflow while the pool is not full."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from nt_mcp.infra.db import Database
from tests.conftest import make_settings


def _gauge(state: str) -> float | None:
    return REGISTRY.get_sample_value("nt_mcp_db_pool_connections", {"state": state})


async def test_overflow_is_zero_until_connections_exceed_the_pool_size(tmp_path: Path, pg_url: str) -> None:
    db = Database(make_settings(tmp_path, database_url=pg_url, db_pool_size=2, db_max_overflow=2))
    try:
        assert (await db.health()).ok
        assert _gauge("overflow") == 0.0  # SQLAlchemy's own figure is -1 here (1 open of a pool of 2)
        assert _gauge("checkedin") == 1.0 and _gauge("checkedout") == 0.0
        async with db.engine.connect(), db.engine.connect(), db.engine.connect():
            await db.health()  # three held and a fourth for the probe: beyond the pool size of 2
            assert _gauge("checkedout") == 3.0 and (_gauge("overflow") or 0.0) >= 1.0
    finally:
        await db.dispose()
