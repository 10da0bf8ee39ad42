"""Every index in sql/indexes/performance_indexes.sql is valid on PostgreSQL and chosen by its query."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from nt_mcp.adapters.brokers.paper import PaperBroker
from nt_mcp.infra import migrate
from nt_mcp.infra.audit import AuditLog
from nt_mcp.infra.backtests import BacktestStore
from nt_mcp.infra.db import Database
from nt_mcp.infra.forecasts import ForecastStore
from nt_mcp.infra.odds_history import OddsHistory
from nt_mcp.infra.spool import Replayer
from nt_mcp.services.order_router import OrderRouter
from nt_mcp.services.prediction_ledger import PredictionLedger
from tests.conftest import make_settings

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def _queries() -> dict[str, sa.Select[Any]]:
    """Each index -> the query the code runs that it serves (the same builder the code calls)."""
    return {
        "ix_audit_log_principal_ts": AuditLog.recent_query("principal-7", 50),
        "ix_audit_log_failures_ts": AuditLog.error_count_query(NOW - timedelta(hours=1)),
        "ix_orders_principal_created": OrderRouter.orders_since_query("principal-7", NOW - timedelta(hours=9)),
        "ix_orders_open_principal": PaperBroker.open_orders_query("principal-7"),
        "ix_dead_letters_unresolved": Replayer.unresolved_query(100),
        "ix_backtests_principal_created": BacktestStore.recent_query("principal-7", 20),
        "ix_fills_principal_filled": PaperBroker.fills_since_query("principal-7", NOW - timedelta(hours=9)),
        "ix_odds_history_event": OddsHistory.event_query("event-77", "h2h", 200_000),
        "ix_prediction_orders_principal_created": PredictionLedger.orders_query("principal-7", "all", 50),
        "ix_prediction_orders_open": PredictionLedger.open_orders_query("principal-7", "kalshi", "KX-M7"),
        "ix_prediction_fills_order": PredictionLedger.fills_query([f"{i:032x}" for i in (7, 70, 700)]),
        "ix_prediction_snapshots_latest": PredictionLedger.latest_snapshot_query("kalshi", "KX-M7", "yes"),
        "ix_neural_models_series": ForecastStore.latest_query(
            "principal-7", "S7", "1Day", "files", NOW - timedelta(days=200)
        ),
        "ix_neural_models_principal_created": ForecastStore.recent_query("principal-7", 20),
        "ix_forecasts_model_created": ForecastStore.forecast_counts_query([f"m{g}" for g in range(20)]),
    }


async def _seed(conn: sa.ext.asyncio.AsyncConnection) -> None:
    # 40,000 calls over 40 days by 50 principals; 1% failed.
    await conn.execute(
        sa.text("""
        INSERT INTO audit_log (ts, principal, tool, outcome, duration_ms, correlation_id, arguments)
        SELECT CAST(:now AS timestamptz) - (g * interval '86 seconds'), 'principal-' || (g % 50), 'ping',
               CASE WHEN g % 100 = 0 THEN 'RATE_LIMITED' ELSE 'ok' END, 1.0, md5(g::text), NULL
        FROM generate_series(1, 40000) AS g
    """),
        {"now": NOW},
    )
    # 60,000 orders over 60 days by 50 principals; 1 in 200 still resting.
    await conn.execute(
        sa.text("""
        INSERT INTO orders (id, client_order_id, principal, broker, mode, symbol, side, order_type,
                            time_in_force, qty, status, created_at, updated_at)
        SELECT md5('o' || g), 'nt-' || md5('c' || g), 'principal-' || (g % 50), 'paper', 'paper', 'AAPL',
               'buy', 'limit', 'gtc', 1, CASE WHEN g % 200 = 0 THEN 'new' ELSE 'filled' END,
               CAST(:now AS timestamptz) - (g * interval '86 seconds'),
               CAST(:now AS timestamptz) - (g * interval '86 seconds')
        FROM generate_series(1, 60000) AS g
    """),
        {"now": NOW},
    )
    # 60,000 fills, one per order above.
    await conn.execute(
        sa.text("""
        INSERT INTO fills (order_id, principal, symbol, side, qty, price, commission, filled_at)
        SELECT md5('o' || g), 'principal-' || (g % 50), 'AAPL', 'buy', 1, 100, 0,
               CAST(:now AS timestamptz) - (g * interval '86 seconds')
        FROM generate_series(1, 60000) AS g
    """),
        {"now": NOW},
    )
    # 20,000 dead letters, all but 20 resolved.
    await conn.execute(
        sa.text("""
        INSERT INTO dead_letters (kind, payload, error, attempts, created_at, resolved_at)
        SELECT 'insert:audit_log', '{}'::jsonb, 'x', 5, CAST(:now AS timestamptz),
               CASE WHEN g % 1000 = 0 THEN NULL ELSE CAST(:now AS timestamptz) END
        FROM generate_series(1, 20000) AS g
    """),
        {"now": NOW},
    )
    # 20,000 stored backtests by 50 principals over 200 days.
    await conn.execute(
        sa.text("""
        INSERT INTO backtests (id, principal, strategy, symbol, timeframe, data_source, params, config, metrics,
                               trades, provenance, created_at)
        SELECT md5(g::text), 'principal-' || (g % 50), 'sma_crossover', 'SPY', '1Day', 'files',
               '{}'::jsonb, '{}'::jsonb, '{"final_equity": 10000}'::jsonb, '[]'::jsonb, '{}'::jsonb,
               CAST(:now AS timestamptz) - (g * interval '864 seconds')
        FROM generate_series(1, 20000) AS g
    """),
        {"now": NOW},
    )
    # 200,000 stored odds: 500 events x 20 bookmakers x 2 outcomes x 10 snapshots.
    await conn.execute(
        sa.text("""
        INSERT INTO odds_history (fetch_id, fetched_at, source, sport_key, event_id, commence_time, bookmaker,
                                  market, outcome, price, last_update)
        SELECT md5((g / 20000)::text), CAST(:now AS timestamptz) - ((g / 20000) * interval '600 seconds'),
               'theoddsapi', 'basketball_nba', 'event-' || (g % 500),
               CAST(:now AS timestamptz) + interval '1 day', 'book' || ((g / 500) % 20), 'h2h',
               CASE WHEN g % 2 = 0 THEN 'Home' ELSE 'Away' END, 1.5 + (g % 100) / 100.0,
               CAST(:now AS timestamptz) - ((g / 20000) * interval '600 seconds')
        FROM generate_series(1, 200000) AS g
    """),
        {"now": NOW},
    )
    # 60,000 prediction orders by 50 principals over 100 markets; 1 in 200 still open; one fill each.
    await conn.execute(
        sa.text("""
        INSERT INTO prediction_orders (id, client_order_id, principal, venue, mode, market_id, side, action,
                                       time_in_force, count, limit_price, status, created_at, updated_at)
        SELECT lpad(to_hex(g), 32, '0'), 'nt-p' || g, 'principal-' || (g % 50), 'kalshi', 'paper', 'KX-M' || (g % 100),
               'yes', 'buy', 'gtc', 10, 0.5, CASE WHEN g % 200 = 0 THEN 'open' ELSE 'filled' END,
               CAST(:now AS timestamptz) - (g * interval '86 seconds'),
               CAST(:now AS timestamptz) - (g * interval '86 seconds')
        FROM generate_series(1, 60000) AS g
    """),
        {"now": NOW},
    )
    await conn.execute(
        sa.text("""
        INSERT INTO prediction_fills (order_id, principal, venue, market_id, side, action, count, price, fee,
                                      book_fetched_at, filled_at)
        SELECT lpad(to_hex(g), 32, '0'), 'principal-' || (g % 50), 'kalshi', 'KX-M' || (g % 100), 'yes', 'buy',
               10, 0.5, 0.18, CAST(:now AS timestamptz), CAST(:now AS timestamptz)
        FROM generate_series(1, 60000) AS g
    """),
        {"now": NOW},
    )
    # 100,000 book snapshots over 100 markets and both sides.
    await conn.execute(
        sa.text("""
        INSERT INTO prediction_price_snapshots (venue, market_id, side, best_bid, best_ask, fetched_at)
        SELECT 'kalshi', 'KX-M' || (g % 100), CASE WHEN g % 2 = 0 THEN 'yes' ELSE 'no' END, 0.43, 0.45,
               CAST(:now AS timestamptz) - (g * interval '60 seconds')
        FROM generate_series(1, 100000) AS g
    """),
        {"now": NOW},
    )
    # 20,000 forecasters by 50 principals on 41 symbols, and 100,000 forecasts made with them.
    await conn.execute(
        sa.text("""
        INSERT INTO neural_models (id, principal, symbol, timeframe, data_source, kind, params, features, metrics,
                                   weights, blob_version, data_start, data_end, created_at)
        SELECT 'm' || g, 'principal-' || (g % 50), 'S' || (g % 41), '1Day', 'files', 'mlp', '{}'::jsonb,
               '{}'::jsonb, '{}'::jsonb, '\\x00'::bytea, 1, CAST(:now AS timestamptz), CAST(:now AS timestamptz),
               CAST(:now AS timestamptz) - (g * interval '864 seconds')
        FROM generate_series(1, 20000) AS g
    """),
        {"now": NOW},
    )
    await conn.execute(
        sa.text("""
        INSERT INTO forecasts (id, model_id, principal, symbol, origin_time, horizon, confidence, path, created_at)
        SELECT 'f' || g, 'm' || (1 + g % 20000), 'principal-' || (g % 50), 'SPY', CAST(:now AS timestamptz), 5,
               0.9, '[]'::jsonb, CAST(:now AS timestamptz) - (g * interval '86 seconds')
        FROM generate_series(1, 100000) AS g
    """),
        {"now": NOW},
    )
    await conn.execute(sa.text("ANALYZE"))


async def test_every_index_in_the_file_has_a_query_and_is_chosen(pg_url: str, tmp_path: Path) -> None:
    db = Database(make_settings(tmp_path, database_url=pg_url))
    await migrate.upgrade(db)
    declared = {re.search(r"IF NOT EXISTS (\w+)", s).group(1) for s in migrate.index_statements()}  # type: ignore[union-attr]
    queries = _queries()
    assert declared == set(queries), "each index must name the query it serves in this test"
    async with db.engine.begin() as conn:
        existing = {r[0] for r in await conn.execute(sa.text("SELECT indexname FROM pg_indexes"))}
        assert declared <= existing
        await _seed(conn)
        for index, query in queries.items():
            compiled = query.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
            plan = "\n".join(r[0] for r in await conn.execute(sa.text(f"EXPLAIN {compiled}")))
            assert index in plan, f"{index} not used:\n{plan}"
    await db.dispose()


@pytest.mark.parametrize("statement", migrate.index_statements())
def test_index_statements_are_idempotent_creates(statement: str) -> None:
    assert statement.upper().startswith("CREATE INDEX IF NOT EXISTS ")
