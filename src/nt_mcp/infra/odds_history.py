"""Odds snapshots: every odds answer fetched (`odds_fetches`) and every price in it (`odds_history`),
written through the durable writer (spooled to local disk while the database is unreachable).

Rows are plain dicts here (infra knows tables, not the betting domain): the odds service builds them.
`OddsHistory.event_query` is the one read: an event's prices in time order (index ix_odds_history_event).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from nt_mcp.errors import DatabaseError
from nt_mcp.infra.db import Database
from nt_mcp.infra.schema import odds_history
from nt_mcp.infra.spool import DurableWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stored:
    fetch_id: str
    prices: int
    durable: str  # "database": written now; "spool": on local disk, replayed when the database is back; "failed"


class OddsHistory:
    def __init__(self, db: Database, writer: DurableWriter) -> None:
        self.db = db
        self.writer = writer

    async def record(self, fetch: dict[str, Any], prices: list[dict[str, Any]]) -> Stored:
        """Store one fetched answer and its prices. Never raises: an odds answer is still an answer when
        it could not be stored (``durable="failed"``, logged)."""
        try:
            written = await self.writer.insert("odds_fetches", fetch)
            written = await self.writer.insert_many("odds_history", prices) and written
        except Exception:
            log.exception("odds snapshot not stored", extra={"fetch_id": fetch["id"], "prices": len(prices)})
            return Stored(fetch["id"], len(prices), "failed")
        return Stored(fetch["id"], len(prices), "database" if written else "spool")

    @staticmethod
    def event_query(event_id: str, market: str | None, limit: int) -> sa.Select[Any]:
        """An event's stored prices, oldest first (served by ix_odds_history_event)."""
        h = odds_history.c
        query = sa.select(
            h.bookmaker, h.market, h.outcome, h.description, h.point, h.price, h.last_update, h.fetched_at,
            h.sport_key, h.commence_time, h.source,
        ).where(h.event_id == event_id)  # fmt: skip
        if market is not None:
            query = query.where(h.market == market)
        return query.order_by(h.event_id, h.last_update, h.id).limit(limit)

    async def event_prices(self, event_id: str, market: str | None, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` stored prices of ``event_id`` (optionally one market), oldest first."""
        try:
            async with self.db.connect() as conn:
                rows = (await conn.execute(self.event_query(event_id, market, limit))).mappings().all()
        except sa.exc.SQLAlchemyError as error:
            raise DatabaseError(f"Could not read the stored odds ({type(error).__name__}).") from None
        return [dict(r) for r in rows]


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes for timezone-aware columns: they are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
