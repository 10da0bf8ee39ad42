"""The tables, as SQLAlchemy Core metadata: what the code queries against.

The database itself is created and changed only by the Alembic migrations in
`nt_mcp.infra.migrations`; a test checks that the migrated database matches this metadata.
Money and quantities are ``NUMERIC`` (Decimal in Python); timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
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
    sa.Column("payload", sa.Text, nullable=False),  # ASCII JSON text (revision 0007): always storable
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
