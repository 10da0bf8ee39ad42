"""Stored backtests: one row per `run_backtest` call, readable only by the principal that ran it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nt_mcp.infra.db import Database
from nt_mcp.infra.schema import backtests


@dataclass(frozen=True)
class StoredBacktest:
    id: str
    principal: str
    strategy: str
    symbol: str
    timeframe: str
    data_source: str
    params: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, Any]
    trades: list[dict[str, Any]]
    provenance: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class BacktestSummary:
    id: str
    strategy: str
    symbol: str
    timeframe: str
    data_source: str
    metrics: dict[str, Any]
    created_at: datetime


_SUMMARY_COLUMNS = (
    backtests.c.id,
    backtests.c.strategy,
    backtests.c.symbol,
    backtests.c.timeframe,
    backtests.c.data_source,
    backtests.c.metrics,
    backtests.c.created_at,
)


class BacktestStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def insert(self, row: StoredBacktest) -> None:
        values = {name: getattr(row, name) for name in StoredBacktest.__dataclass_fields__}

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(backtests.insert().values(**values))

        await self.db.transaction(work)

    async def get(self, principal: str, backtest_id: str) -> StoredBacktest | None:
        """The backtest ``backtest_id`` if ``principal`` ran it; None otherwise (another's id included)."""
        query = sa.select(backtests).where(backtests.c.id == backtest_id, backtests.c.principal == principal)
        async with self.db.connect() as conn:
            row = (await conn.execute(query)).mappings().first()
        return None if row is None else StoredBacktest(**dict(row))

    @staticmethod
    def recent_query(principal: str, limit: int) -> sa.Select[Any]:
        """A principal's latest backtests, newest first (served by ix_backtests_principal_created)."""
        return (
            sa.select(*_SUMMARY_COLUMNS)
            .where(backtests.c.principal == principal)
            .order_by(backtests.c.created_at.desc())
            .limit(limit)
        )

    async def recent(self, principal: str, limit: int) -> list[BacktestSummary]:
        async with self.db.connect() as conn:
            rows = (await conn.execute(self.recent_query(principal, limit))).mappings().all()
        return [BacktestSummary(**dict(r)) for r in rows]

    async def count(self) -> int:
        """Every stored backtest, all principals (tests and status)."""
        async with self.db.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count()).select_from(backtests))).scalar_one())
