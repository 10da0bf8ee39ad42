"""Stored forecasters and forecasts (tables `neural_models` and `forecasts`), private to the principal
that trained them. The weights blob is bytes this server wrote; it is only ever read back by
`nt_mcp.domain.forecast.model.FittedModel.from_blob` (no pickle)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nt_mcp.infra.db import Database
from nt_mcp.infra.schema import forecasts, neural_models


@dataclass(frozen=True)
class StoredModel:
    id: str
    principal: str
    symbol: str
    timeframe: str
    data_source: str
    kind: str
    params: dict[str, Any]
    features: dict[str, Any]
    metrics: dict[str, Any]
    weights: bytes
    blob_version: int
    data_start: datetime
    data_end: datetime
    created_at: datetime


@dataclass(frozen=True)
class ModelSummary:
    id: str
    symbol: str
    timeframe: str
    data_source: str
    kind: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    data_start: datetime
    data_end: datetime
    created_at: datetime


@dataclass(frozen=True)
class StoredForecast:
    id: str
    model_id: str
    principal: str
    symbol: str
    origin_time: datetime
    horizon: int
    confidence: float
    path: list[dict[str, Any]]
    created_at: datetime


_SUMMARY = (
    neural_models.c.id,
    neural_models.c.symbol,
    neural_models.c.timeframe,
    neural_models.c.data_source,
    neural_models.c.kind,
    neural_models.c.params,
    neural_models.c.metrics,
    neural_models.c.data_start,
    neural_models.c.data_end,
    neural_models.c.created_at,
)


class ForecastStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert_model(self, row: StoredModel) -> None:
        values = {name: getattr(row, name) for name in StoredModel.__dataclass_fields__}

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(neural_models.insert().values(**values))

        await self.db.transaction(work)

    @staticmethod
    def latest_query(principal: str, symbol: str, timeframe: str, data_source: str, since: datetime) -> sa.Select[Any]:
        """A principal's newest model of one series trained since ``since`` (ix_neural_models_series)."""
        return (
            sa.select(neural_models)
            .where(
                neural_models.c.principal == principal,
                neural_models.c.symbol == symbol,
                neural_models.c.timeframe == timeframe,
                neural_models.c.data_source == data_source,
                neural_models.c.created_at >= since,
            )
            .order_by(neural_models.c.created_at.desc())
            .limit(1)
        )

    async def latest(
        self, principal: str, symbol: str, timeframe: str, data_source: str, since: datetime
    ) -> StoredModel | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(self.latest_query(principal, symbol, timeframe, data_source, since))).mappings()
            found = row.first()
        return None if found is None else StoredModel(**dict(found))

    async def get(self, principal: str, model_id: str) -> StoredModel | None:
        query = sa.select(neural_models).where(neural_models.c.id == model_id, neural_models.c.principal == principal)
        async with self.db.connect() as conn:
            found = (await conn.execute(query)).mappings().first()
        return None if found is None else StoredModel(**dict(found))

    @staticmethod
    def recent_query(principal: str, limit: int, symbol: str | None = None) -> sa.Select[Any]:
        """A principal's newest models, newest first (ix_neural_models_principal_created)."""
        query = sa.select(*_SUMMARY).where(neural_models.c.principal == principal)
        if symbol is not None:
            query = query.where(neural_models.c.symbol == symbol)
        return query.order_by(neural_models.c.created_at.desc()).limit(limit)

    async def recent(self, principal: str, limit: int, symbol: str | None = None) -> list[ModelSummary]:
        async with self.db.connect() as conn:
            rows = (await conn.execute(self.recent_query(principal, limit, symbol))).mappings().all()
        return [ModelSummary(**dict(r)) for r in rows]

    @staticmethod
    def forecast_counts_query(model_ids: list[str]) -> sa.Select[Any]:
        """Forecasts made with each model and the latest one's time (ix_forecasts_model_created)."""
        return (
            sa.select(forecasts.c.model_id, sa.func.count(), sa.func.max(forecasts.c.created_at))
            .where(forecasts.c.model_id.in_(model_ids))
            .group_by(forecasts.c.model_id)
        )

    async def forecast_counts(self, model_ids: list[str]) -> dict[str, tuple[int, datetime]]:
        if not model_ids:
            return {}
        async with self.db.connect() as conn:
            rows = (await conn.execute(self.forecast_counts_query(model_ids))).all()
        return {r[0]: (int(r[1]), r[2]) for r in rows}

    async def insert_forecast(self, row: StoredForecast) -> None:
        values = {name: getattr(row, name) for name in StoredForecast.__dataclass_fields__}

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(forecasts.insert().values(**values))

        await self.db.transaction(work)
