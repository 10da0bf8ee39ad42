"""Sports odds snapshots: every odds answer fetched and every price in it.

`odds_fetches` has one row per answer (source, endpoint, sport, the request with the API key redacted,
the historical snapshot time, credits charged and the quota after the call, counts). `odds_history`
has one row per price: event, sport, commence time, bookmaker, market, outcome (name, description,
point), decimal odds and the bookmaker's last_update, with the fetch it came from.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "odds_fetches",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("fetched_at", TS, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("sport_key", sa.String(64)),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("snapshot_at", TS),
        sa.Column("credits_charged", sa.Integer),
        sa.Column("quota_remaining", sa.Integer),
        sa.Column("quota_used", sa.Integer),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("prices", sa.Integer, nullable=False),
    )
    op.create_table(
        "odds_history",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("fetch_id", sa.String(32), nullable=False),
        sa.Column("fetched_at", TS, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("sport_key", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("commence_time", TS, nullable=False),
        sa.Column("bookmaker", sa.String(64), nullable=False),
        sa.Column("market", sa.String(64), nullable=False),
        sa.Column("outcome", sa.String(300), nullable=False),
        sa.Column("description", sa.String(300)),
        sa.Column("point", sa.Numeric(12, 4)),
        sa.Column("price", sa.Numeric(18, 6), nullable=False),
        sa.Column("last_update", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("odds_history")
    op.drop_table("odds_fetches")
