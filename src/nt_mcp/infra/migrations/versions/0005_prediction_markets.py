"""Prediction markets (Polymarket, Kalshi): market metadata, the paper ledger and book snapshots.

- ``prediction_markets``: the latest metadata read of each market a principal traded or looked up
  (title, category, status, resolution, close time), with the time it was fetched.
- ``prediction_orders``: every prediction order, paper or live, journaled before it fills or is
  sent; ``client_order_id`` is unique (derived from the caller's idempotency key), so one key can
  never become two orders.
- ``prediction_fills``: each paper fill (or live fill seen), priced from the venue's real book.
- ``prediction_positions``: one row per (principal, venue, market, side): quantity, average price,
  fees, realised P&L, and the resolution once the market settled.
- ``prediction_price_snapshots``: the top of each book this server fetched (fills, marks).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(28, 10)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "prediction_markets",
        sa.Column("venue", sa.String(16), primary_key=True),
        sa.Column("market_id", sa.String(128), primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("category", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(8)),
        sa.Column("close_time", TS),
        sa.Column("fetched_at", TS, nullable=False),
    )
    op.create_table(
        "prediction_orders",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("client_order_id", sa.String(128), nullable=False, unique=True),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("venue", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(8), nullable=False),
        sa.Column("market_id", sa.String(128), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("action", sa.String(4), nullable=False),
        sa.Column("time_in_force", sa.String(8), nullable=False),
        sa.Column("count", MONEY, nullable=False),
        sa.Column("limit_price", MONEY, nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("filled_count", MONEY, nullable=False, server_default="0"),
        sa.Column("filled_cost", MONEY, nullable=False, server_default="0"),
        sa.Column("fees", MONEY, nullable=False, server_default="0"),
        sa.Column("venue_order_id", sa.String(128)),
        sa.Column("error", sa.Text),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "prediction_fills",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.String(64), sa.ForeignKey("prediction_orders.id", ondelete="CASCADE"), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("venue", sa.String(16), nullable=False),
        sa.Column("market_id", sa.String(128), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("action", sa.String(4), nullable=False),
        sa.Column("count", MONEY, nullable=False),
        sa.Column("price", MONEY, nullable=False),
        sa.Column("fee", MONEY, nullable=False),
        sa.Column("book_fetched_at", TS, nullable=False),
        sa.Column("filled_at", TS, nullable=False),
    )
    op.create_table(
        "prediction_positions",
        sa.Column("principal", sa.String(200), primary_key=True),
        sa.Column("venue", sa.String(16), primary_key=True),
        sa.Column("market_id", sa.String(128), primary_key=True),
        sa.Column("side", sa.String(4), primary_key=True),
        sa.Column("qty", MONEY, nullable=False),
        sa.Column("avg_price", MONEY, nullable=False),
        sa.Column("fees", MONEY, nullable=False, server_default="0"),
        sa.Column("realized_pnl", MONEY, nullable=False, server_default="0"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("resolution", sa.String(8)),
        sa.Column("settled_at", TS),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "prediction_price_snapshots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("venue", sa.String(16), nullable=False),
        sa.Column("market_id", sa.String(128), nullable=False),
        sa.Column("side", sa.String(4), nullable=False),
        sa.Column("best_bid", MONEY),
        sa.Column("best_ask", MONEY),
        sa.Column("bid_size", MONEY),
        sa.Column("ask_size", MONEY),
        sa.Column("venue_timestamp", TS),
        sa.Column("fetched_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("prediction_price_snapshots")
    op.drop_table("prediction_positions")
    op.drop_table("prediction_fills")
    op.drop_table("prediction_orders")
    op.drop_table("prediction_markets")
