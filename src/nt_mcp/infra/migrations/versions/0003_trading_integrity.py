"""Trading integrity: what an idempotency key was first used for, and who is working on it now.

`orders` and `strategy_runs` get:

- ``request_fingerprint``: sha256 of the canonical request (the fields that define the order or the
  run), so a key reused for a different request is refused (``IDEMPOTENCY_KEY_REUSED``);
- ``request``: that canonical request as JSON, to name the field that differs;
- ``claimed_by`` / ``claimed_at``: the call that owns an unsettled row (an order being sent, a run
  being executed). Other calls with the same key wait for it; a claim whose owner is gone is taken
  over, never duplicated (see `nt_mcp.services.idempotency`).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
TABLES = ("orders", "strategy_runs")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("request_fingerprint", sa.String(64)))
            batch.add_column(sa.Column("request", JSON))
            batch.add_column(sa.Column("claimed_by", sa.String(64)))
            batch.add_column(sa.Column("claimed_at", TS))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            for column in ("claimed_at", "claimed_by", "request", "request_fingerprint"):
                batch.drop_column(column)
