"""Jobs: long work (sweeps, forecaster training) stored so any replica can answer ``get_job`` and a
restart loses nothing. A worker claims a queued row and holds a lease it renews (heartbeat); a row
left ``running`` with an expired lease is requeued (idempotent work, up to ``max_attempts``) or
marked failed with the reason.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("arguments", _JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("message", sa.Text),
        sa.Column("result", _JSON),
        sa.Column("error", sa.Text),
        sa.Column("idempotent", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("max_attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_expires_at", _TS),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("started_at", _TS),
        sa.Column("finished_at", _TS),
        sa.Column("updated_at", _TS, nullable=False),
    )
    op.create_index("ix_jobs_principal_created", "jobs", ["principal", "created_at"])
    op.create_index("ix_jobs_state_created", "jobs", ["state", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_state_created", table_name="jobs")
    op.drop_index("ix_jobs_principal_created", table_name="jobs")
    op.drop_table("jobs")
