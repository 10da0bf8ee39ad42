"""The tables, as SQLAlchemy Core metadata: what the code queries against.

The database itself is created and changed only by the Alembic migrations in
`nt_mcp.infra.migrations`; a test checks that the migrated database matches this metadata.
Money and quantities are ``NUMERIC`` (Decimal in Python); timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

metadata = sa.MetaData()


class _JSON(sa.types.TypeDecorator[Any]):
    """JSON; ``JSONB`` on PostgreSQL. The PostgreSQL dialect is imported when a PostgreSQL engine first
    uses the type, so a server on SQLite never loads it."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import JSONB

            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(sa.JSON())


JSONType = _JSON()
Money = sa.Numeric(28, 10)
Timestamp = sa.DateTime(timezone=True)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("client_order_id", sa.String(128), nullable=False, unique=True),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("broker", sa.String(32), nullable=False),
    sa.Column("mode", sa.String(8), nullable=False),
    sa.Column("broker_order_id", sa.String(128)),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("order_type", sa.String(16), nullable=False),
    sa.Column("time_in_force", sa.String(8), nullable=False),
    sa.Column("qty", Money),
    sa.Column("notional", Money),
    sa.Column("limit_price", Money),
    sa.Column("stop_price", Money),
    sa.Column("trail_percent", Money),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("filled_qty", Money, nullable=False, server_default="0"),
    sa.Column("filled_avg_price", Money),
    sa.Column("strategy_run_id", sa.String(64)),
    sa.Column("details", JSONType),
    sa.Column("error", sa.Text),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    # revision 0003: what the idempotency key was first used for, and the call sending it now
    sa.Column("request_fingerprint", sa.String(64)),
    sa.Column("request", JSONType),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claimed_at", Timestamp),
)

fills = sa.Table(
    "fills",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String(64), sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("side", sa.String(8), nullable=False),
    sa.Column("qty", Money, nullable=False),
    sa.Column("price", Money, nullable=False),
    sa.Column("commission", Money, nullable=False, server_default="0"),
    sa.Column("filled_at", Timestamp, nullable=False),
)

positions_snapshots = sa.Table(
    "positions_snapshots",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("broker", sa.String(32), nullable=False),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("qty", Money, nullable=False),
    sa.Column("avg_entry_price", Money, nullable=False),
    sa.Column("realized_pl", Money, nullable=False, server_default="0"),
    sa.Column("taken_at", Timestamp, nullable=False),
)

backtests = sa.Table(
    "backtests",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("strategy", sa.String(64), nullable=False),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("timeframe", sa.String(16), nullable=False),
    sa.Column("data_source", sa.String(16), nullable=False),
    sa.Column("params", JSONType, nullable=False),
    sa.Column("config", JSONType, nullable=False),
    sa.Column("metrics", JSONType, nullable=False),
    sa.Column("trades", JSONType, nullable=False),
    sa.Column("provenance", JSONType, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

# revision 0007: the equity-curve PNG of each stored backtest (the backtest://{id}/equity.png resource)
backtest_charts = sa.Table(
    "backtest_charts",
    metadata,
    sa.Column("backtest_id", sa.String(64), sa.ForeignKey("backtests.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("png", sa.LargeBinary, nullable=False),
)

strategy_runs = sa.Table(
    "strategy_runs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("strategy", sa.String(64), nullable=False),
    sa.Column("symbols", JSONType, nullable=False),
    sa.Column("params", JSONType, nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("mode", sa.String(8), nullable=False),
    sa.Column("signals", JSONType, nullable=False),
    sa.Column("orders", JSONType, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    # revision 0003: as for orders
    sa.Column("request_fingerprint", sa.String(64)),
    sa.Column("request", JSONType),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claimed_at", Timestamp),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ts", Timestamp, nullable=False),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("tool", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(48), nullable=False),
    sa.Column("duration_ms", sa.Float, nullable=False),
    sa.Column("correlation_id", sa.String(32), nullable=False),
    sa.Column("arguments", JSONType),
)

dead_letters = sa.Table(
    "dead_letters",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(48), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),  # ASCII JSON text (revision 0008): always storable
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("resolved_at", Timestamp),
)

# revision 0002: the paper broker's accounts and positions (its orders and fills use the tables above)
paper_accounts = sa.Table(
    "paper_accounts",
    metadata,
    sa.Column("principal", sa.String(200), primary_key=True),
    sa.Column("cash", Money, nullable=False),
    sa.Column("starting_cash", Money, nullable=False),
    sa.Column("realized_pl", Money, nullable=False, server_default="0"),
    sa.Column("commissions", Money, nullable=False, server_default="0"),
    sa.Column("day_start_equity", Money, nullable=False),
    sa.Column("day_start_on", sa.Date, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

paper_positions = sa.Table(
    "paper_positions",
    metadata,
    sa.Column(
        "principal",
        sa.String(200),
        sa.ForeignKey("paper_accounts.principal", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("symbol", sa.String(32), primary_key=True),
    sa.Column("qty", Money, nullable=False),
    sa.Column("avg_entry_price", Money, nullable=False),
    sa.Column("realized_pl", Money, nullable=False, server_default="0"),
    sa.Column("updated_at", Timestamp, nullable=False),
)

# revision 0004: sports odds snapshots. One odds_fetches row per odds answer fetched (the request with the
# key redacted, its cost and the quota after it), one odds_history row per price in that answer.
odds_fetches = sa.Table(
    "odds_fetches",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("fetched_at", Timestamp, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("endpoint", sa.String(32), nullable=False),
    sa.Column("sport_key", sa.String(64)),
    sa.Column("request", sa.Text, nullable=False),
    sa.Column("snapshot_at", Timestamp),
    sa.Column("credits_charged", sa.Integer),
    sa.Column("quota_remaining", sa.Integer),
    sa.Column("quota_used", sa.Integer),
    sa.Column("events", sa.Integer, nullable=False),
    sa.Column("prices", sa.Integer, nullable=False),
)

odds_history = sa.Table(
    "odds_history",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("fetch_id", sa.String(32), nullable=False),
    sa.Column("fetched_at", Timestamp, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("sport_key", sa.String(64), nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("commence_time", Timestamp, nullable=False),
    sa.Column("bookmaker", sa.String(64), nullable=False),
    sa.Column("market", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(300), nullable=False),
    sa.Column("description", sa.String(300)),
    sa.Column("point", sa.Numeric(12, 4)),
    sa.Column("price", sa.Numeric(18, 6), nullable=False),  # decimal odds
    sa.Column("last_update", Timestamp, nullable=False),
)

# revision 0005: prediction markets (Polymarket, Kalshi): cached market metadata, the paper ledger
# (orders, fills, positions per principal) and the book snapshots fills were priced from
prediction_markets = sa.Table(
    "prediction_markets",
    metadata,
    sa.Column("venue", sa.String(16), primary_key=True),
    sa.Column("market_id", sa.String(128), primary_key=True),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("category", sa.String(128)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("resolution", sa.String(8)),
    sa.Column("close_time", Timestamp),
    sa.Column("fetched_at", Timestamp, nullable=False),
)

prediction_orders = sa.Table(
    "prediction_orders",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("client_order_id", sa.String(128), nullable=False, unique=True),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("venue", sa.String(16), nullable=False),
    sa.Column("mode", sa.String(8), nullable=False),
    sa.Column("market_id", sa.String(128), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("action", sa.String(4), nullable=False),
    sa.Column("time_in_force", sa.String(8), nullable=False),
    sa.Column("count", Money, nullable=False),
    sa.Column("limit_price", Money, nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("filled_count", Money, nullable=False, server_default="0"),
    sa.Column("filled_cost", Money, nullable=False, server_default="0"),
    sa.Column("fees", Money, nullable=False, server_default="0"),
    sa.Column("venue_order_id", sa.String(128)),
    sa.Column("error", sa.Text),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
)

prediction_fills = sa.Table(
    "prediction_fills",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("order_id", sa.String(64), sa.ForeignKey("prediction_orders.id", ondelete="CASCADE"), nullable=False),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("venue", sa.String(16), nullable=False),
    sa.Column("market_id", sa.String(128), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("action", sa.String(4), nullable=False),
    sa.Column("count", Money, nullable=False),
    sa.Column("price", Money, nullable=False),
    sa.Column("fee", Money, nullable=False),
    sa.Column("book_fetched_at", Timestamp, nullable=False),
    sa.Column("filled_at", Timestamp, nullable=False),
)

prediction_positions = sa.Table(
    "prediction_positions",
    metadata,
    sa.Column("principal", sa.String(200), primary_key=True),
    sa.Column("venue", sa.String(16), primary_key=True),
    sa.Column("market_id", sa.String(128), primary_key=True),
    sa.Column("side", sa.String(4), primary_key=True),
    sa.Column("qty", Money, nullable=False),
    sa.Column("avg_price", Money, nullable=False),
    sa.Column("fees", Money, nullable=False, server_default="0"),
    sa.Column("realized_pnl", Money, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("resolution", sa.String(8)),
    sa.Column("settled_at", Timestamp),
    sa.Column("updated_at", Timestamp, nullable=False),
)

prediction_price_snapshots = sa.Table(
    "prediction_price_snapshots",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("venue", sa.String(16), nullable=False),
    sa.Column("market_id", sa.String(128), nullable=False),
    sa.Column("side", sa.String(4), nullable=False),
    sa.Column("best_bid", Money),
    sa.Column("best_ask", Money),
    sa.Column("bid_size", Money),
    sa.Column("ask_size", Money),
    sa.Column("venue_timestamp", Timestamp),
    sa.Column("fetched_at", Timestamp, nullable=False),
)

# revision 0006: analytics -- trained neural forecasters (weights as a versioned blob) and their forecasts
neural_models = sa.Table(
    "neural_models",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("timeframe", sa.String(16), nullable=False),
    sa.Column("data_source", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("params", JSONType, nullable=False),
    sa.Column("features", JSONType, nullable=False),
    sa.Column("metrics", JSONType, nullable=False),
    sa.Column("weights", sa.LargeBinary, nullable=False),
    sa.Column("blob_version", sa.Integer, nullable=False),
    sa.Column("data_start", Timestamp, nullable=False),
    sa.Column("data_end", Timestamp, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

forecasts = sa.Table(
    "forecasts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("model_id", sa.String(64), sa.ForeignKey("neural_models.id", ondelete="CASCADE"), nullable=False),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("origin_time", Timestamp, nullable=False),
    sa.Column("horizon", sa.Integer, nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("path", JSONType, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
)

# revision 0009: long work stored as jobs (see nt_mcp.infra.jobs)
jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("principal", sa.String(200), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("arguments", JSONType, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("progress", sa.Float, nullable=False, server_default="0"),
    sa.Column("message", sa.Text),
    sa.Column("result", JSONType),
    sa.Column("error", sa.Text),
    sa.Column("idempotent", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="1"),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", Timestamp),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("started_at", Timestamp),
    sa.Column("finished_at", Timestamp),
    sa.Column("updated_at", Timestamp, nullable=False),
)
