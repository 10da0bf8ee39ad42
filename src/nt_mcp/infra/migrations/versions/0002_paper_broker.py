"""Paper broker: one simulated account per principal and its open positions.

`paper_accounts` holds the cash, the starting cash, realised P&L, commissions paid and the equity at
the start of the current trading day (America/New_York date in `day_start_on`), from which the day
P&L and the daily-loss halt are computed. `paper_positions` holds one row per (principal, symbol)
with the signed quantity, the average entry price and the realised P&L of that symbol.
Orders and fills of the paper broker live in the `orders` and `fills` tables of revision 0001.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MONEY = sa.Numeric(28, 10)
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "paper_accounts",
        sa.Column("principal", sa.String(200), primary_key=True),
        sa.Column("cash", MONEY, nullable=False),
        sa.Column("starting_cash", MONEY, nullable=False),
        sa.Column("realized_pl", MONEY, nullable=False, server_default="0"),
        sa.Column("commissions", MONEY, nullable=False, server_default="0"),
        sa.Column("day_start_equity", MONEY, nullable=False),
        sa.Column("day_start_on", sa.Date, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "paper_positions",
        sa.Column(
            "principal",
            sa.String(200),
            sa.ForeignKey("paper_accounts.principal", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("symbol", sa.String(32), primary_key=True),
        sa.Column("qty", MONEY, nullable=False),
        sa.Column("avg_entry_price", MONEY, nullable=False),
        sa.Column("realized_pl", MONEY, nullable=False, server_default="0"),
        sa.Column("updated_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("paper_positions")
    op.drop_table("paper_accounts")
