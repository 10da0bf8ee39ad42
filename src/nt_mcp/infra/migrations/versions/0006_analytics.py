"""Analytics: fitted neural forecasters and the forecasts made with them.

`neural_models` holds one row per trained forecaster: who trained it, on which symbol, timeframe and
data source, its parameters, its features, its walk-forward metrics (against the baselines) and its
fitted weights as a versioned blob this server wrote (`nt_mcp.domain.forecast.model`; never pickled).
`forecasts` holds every forecast made from a model: origin bar, horizon, the predicted path with its
conformal interval.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "neural_models",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("timeframe", sa.String(16), nullable=False),
        sa.Column("data_source", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("params", JSON, nullable=False),
        sa.Column("features", JSON, nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("weights", sa.LargeBinary, nullable=False),
        sa.Column("blob_version", sa.Integer, nullable=False),
        sa.Column("data_start", TS, nullable=False),
        sa.Column("data_end", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "forecasts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("model_id", sa.String(64), sa.ForeignKey("neural_models.id", ondelete="CASCADE"), nullable=False),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("origin_time", TS, nullable=False),
        sa.Column("horizon", sa.Integer, nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("path", JSON, nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("forecasts")
    op.drop_table("neural_models")
