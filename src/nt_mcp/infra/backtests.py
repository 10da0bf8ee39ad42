"""Stored backtests: one row per `run_backtest` call, readable only by the principal that ran it,
and its equity-curve PNG in `backtest_charts`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nt_mcp.infra.db import Database
from nt_mcp.infra.schema import backtest_charts, backtests


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

    async def insert(self, row: StoredBacktest, chart_png: bytes | None = None) -> None:
        """Store ``row`` and, when given, its equity chart, in one transaction."""
        values = {name: getattr(row, name) for name in StoredBacktest.__dataclass_fields__}

        async def work(conn: AsyncConnection) -> None:
            await conn.execute(backtests.insert().values(**values))
            if chart_png is not None:
                await conn.execute(backtest_charts.insert().values(backtest_id=row.id, png=chart_png))

        await self.db.transaction(work)

    async def chart(self, principal: str, backtest_id: str) -> bytes | None:
        """The equity-chart PNG of ``backtest_id`` if ``principal`` ran it and it has one; else None."""
        query = (
            sa.select(backtest_charts.c.png)
            .join(backtests, backtests.c.id == backtest_charts.c.backtest_id)
            .where(backtests.c.id == backtest_id, backtests.c.principal == principal)
        )
        async with self.db.connect() as conn:
            png = (await conn.execute(query)).scalar_one_or_none()
        return None if png is None else bytes(png)

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
