"""Durability: a dead letter's payload is text (ASCII JSON), so every write that failed can be stored.

A write PostgreSQL refuses for its content (a NUL character, a lone surrogate) was refused again
when its payload went into the ``jsonb`` column of ``dead_letters``, and the spool stalled behind it.
The payload is now ASCII JSON text (``\\u0000`` as six characters), which every backend stores.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("dead_letters", "payload", type_=sa.Text(), postgresql_using="payload::text")
        return
    with op.batch_alter_table("dead_letters") as batch:
        batch.alter_column("payload", type_=sa.Text(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import JSONB

        op.alter_column("dead_letters", "payload", type_=JSONB(), postgresql_using="payload::jsonb")
        return
    with op.batch_alter_table("dead_letters") as batch:
        batch.alter_column("payload", type_=sa.JSON(), existing_nullable=False)
