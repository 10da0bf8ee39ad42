"""Backtest charts: the equity-curve PNG of each stored backtest, served as the MCP resource
``backtest://{id}/equity.png``. Kept apart from `backtests` so listing and reading backtests never
loads the image; deleted with its backtest.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "backtest_charts",
        sa.Column("backtest_id", sa.String(64), sa.ForeignKey("backtests.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("png", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("backtest_charts")
