"""Initial schema: orders, fills, positions_snapshots, backtests, strategy_runs, audit_log, dead_letters.

Migrations are frozen history: this file states the schema as it was at revision 0001 and is
never edited; later changes are new revisions.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(JSONB(), "postgresql")
MONEY = sa.Numeric(28, 10)
TS = sa.DateTime(timezone=True)


def _serial() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "orders",
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
        sa.Column("qty", MONEY),
        sa.Column("notional", MONEY),
        sa.Column("limit_price", MONEY),
        sa.Column("stop_price", MONEY),
        sa.Column("trail_percent", MONEY),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("filled_qty", MONEY, nullable=False, server_default="0"),
        sa.Column("filled_avg_price", MONEY),
        sa.Column("strategy_run_id", sa.String(64)),
        sa.Column("details", JSON),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "fills",
        _serial(),
        sa.Column("order_id", sa.String(64), sa.ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("qty", MONEY, nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("commission", MONEY, nullable=False, server_default="0"),
        sa.Column("filled_at", TS, nullable=False),
    )
    op.create_table(
        "positions_snapshots",
        _serial(),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("broker", sa.String(32), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("qty", MONEY, nullable=False),
        sa.Column("avg_entry_price", MONEY, nullable=False),
        sa.Column("realized_pl", MONEY, nullable=False, server_default="0"),
        sa.Column("taken_at", TS, nullable=False),
    )
    op.create_table(
        "backtests",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(16), nullable=False),
        sa.Column("data_source", sa.String(16), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("config", JSON, nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("trades", JSON, nullable=False),
        sa.Column("provenance", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "strategy_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("strategy", sa.String(64), nullable=False),
        sa.Column("symbols", JSON, nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("signals", JSON, nullable=False),
        sa.Column("orders", JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "audit_log",
        _serial(),
        sa.Column("ts", TS, nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("tool", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(48), nullable=False),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("correlation_id", sa.String(32), nullable=False),
        sa.Column("arguments", JSON),
    )
    op.create_table(
        "dead_letters",
        _serial(),
        sa.Column("kind", sa.String(48), nullable=False),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("resolved_at", TS),
    )


def downgrade() -> None:
    for table in (
        "dead_letters",
        "audit_log",
        "strategy_runs",
        "backtests",
        "positions_snapshots",
        "fills",
        "orders",
    ):
        op.drop_table(table)
