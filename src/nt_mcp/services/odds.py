"""The odds service: one configured odds source, its answers parsed into the betting domain, every
freshly fetched odds answer stored as snapshots, and the board-wide computations (best prices,
arbitrage, bookmaker margins, movement over the stored snapshots).

The source is built on first use (`build_odds_source`): no odds setting costs nothing at start, and a
tool that needs a source answers ``NOT_CONFIGURED`` naming the settings. Sport keys are checked
against the source's list (The Odds API's free ``/v4/sports?all=true``, cached for hours; the files
present) before any odds request, so an unknown sport costs no credits.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from nt_mcp.adapters.odds import build_odds_source
from nt_mcp.adapters.odds.model import Fetched, OddsRequest, OddsSource, Quota
from nt_mcp.adapters.odds.parse import ParsedEvent, gc_paused, parse_events
from nt_mcp.config import Settings
from nt_mcp.domain.betting import (
    ArbitrageQuery,
    ArbitrageReport,
    BookmakerMargin,
    PricePoint,
    PriceSeries,
    bookmaker_margins,
    find_arbitrage,
    odds_movement,
)
from nt_mcp.errors import ExternalAPIError, NotFoundError, ValidationError
from nt_mcp.infra.cache import Cache
from nt_mcp.infra.db import Database
from nt_mcp.infra.odds_history import OddsHistory, Stored, as_utc
from nt_mcp.infra.resilience import Upstreams
from nt_mcp.infra.spool import DurableWriter

log = logging.getLogger(__name__)
MAX_MOVEMENT_ROWS = 200_000


@dataclass(frozen=True)
class Board:
    """A parsed odds answer: its provenance, its events, what was skipped and whether it was stored."""

    fetched: Fetched
    events: list[ParsedEvent]
    skipped: int
    skip_reasons: list[str]
    stored: Stored | None  # None when no new answer was fetched (served from the cache)


@dataclass(frozen=True)
class Movement:
    event_id: str
    sport_key: str
    commence_time: datetime
    sources: list[str]
    prices_read: int
    truncated: bool
    first_seen: datetime
    last_seen: datetime
    series: list[PriceSeries]


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _snapshot_rows(fetch_id: str, fetched: Fetched, events: list[ParsedEvent]) -> list[dict[str, Any]]:
    """One odds_history row per price of ``events`` (decimal odds as exact decimals of the float)."""
    rows = []
    with gc_paused():
        for parsed in events:
            event = parsed.odds
            commence = _ts(event.commence_time)
            for book in event.books:
                last_update = _ts(book.last_update)
                for o in book.outcomes:
                    rows.append(
                        {
                            "fetch_id": fetch_id,
                            "fetched_at": fetched.fetched_at,
                            "source": fetched.source,
                            "sport_key": event.sport_key,
                            "event_id": event.event_id,
                            "commence_time": commence,
                            "bookmaker": book.bookmaker,
                            "market": book.market,
                            "outcome": o.name,
                            "description": o.description,
                            "point": None if o.point is None else Decimal(repr(o.point)),
                            "price": Decimal(repr(o.price)),
                            "last_update": last_update,
                        }
                    )
    return rows


class OddsService:
    def __init__(
        self, settings: Settings, upstreams: Upstreams, cache: Cache, db: Database, writer: DurableWriter
    ) -> None:
        self.settings = settings
        self.upstreams = upstreams
        self.cache = cache
        self.history = OddsHistory(db, writer)
        self._source: OddsSource | None = None

    @property
    def configured(self) -> str | None:
        """The source the settings choose (theoddsapi or files), or None."""
        if self.settings.odds_api_key is not None:
            return "theoddsapi"
        return "files" if self.settings.odds_dir is not None else None

    def source(self) -> OddsSource:
        """The configured source; `OddsNotConfiguredError` when there is none."""
        if self._source is None:
            self._source = build_odds_source(self.settings, self.upstreams, self.cache)
        return self._source

    async def check_sport(self, sport: str, *, allow_upcoming: bool = False) -> None:
        """ValidationError (argument ``sport``) unless the source knows ``sport``."""
        if allow_upcoming and sport == "upcoming":
            return
        known = await self.source().sport_keys()
        if known is not None and sport not in known:
            close = sorted(k for k in known if sport.split("_")[0] in k)[:10]
            hint = f"; similar: {', '.join(close)}" if close else "; get_sports lists them"
            raise ValidationError(
                f"unknown sport {sport!r} for the {self.source().name} source{hint}", argument="sport"
            )

    # ------------------------------------------------------------ fetching

    async def sports(self, all_sports: bool) -> Fetched:
        return await self.source().sports(all_sports)

    async def events(self, sport: str, commence_from: datetime | None, commence_to: datetime | None) -> Fetched:
        await self.check_sport(sport)
        return await self.source().events(sport, commence_from, commence_to)

    async def scores(self, sport: str, days_from: int | None) -> Fetched:
        await self.check_sport(sport)
        return await self.source().scores(sport, days_from)

    async def odds(self, request: OddsRequest) -> Board:
        """Every event's prices for ``request`` (one upstream request, or the cache), stored when fresh."""
        await self.check_sport(request.sport, allow_upcoming=True)
        fetched = await self.source().odds(request)
        if not isinstance(fetched.data, list):
            raise ExternalAPIError(
                f"The {fetched.source} answer for {request.sport} odds is not a list of events.",
                service=fetched.source,
                retryable=False,
            )
        return await self._board(fetched, fetched.data, request.sport)

    async def event_odds(self, event_id: str, request: OddsRequest) -> Board:
        """One event's prices in any markets, stored when fresh."""
        await self.check_sport(request.sport)
        fetched = await self.source().event_odds(event_id, request)
        if not isinstance(fetched.data, dict):
            raise NotFoundError(
                f"no odds for event {event_id!r}", code="EVENT_NOT_FOUND", context={"argument": "event_id"}
            )
        return await self._board(fetched, [fetched.data], request.sport)

    async def _board(self, fetched: Fetched, raw: Sequence[Any], sport: str) -> Board:
        parsed = await asyncio.to_thread(parse_events, raw, self.source().price_format)
        stored = None
        if not fetched.cached:
            stored = await self._store(fetched, parsed.events, sport)
        return Board(fetched, parsed.events, parsed.skipped, parsed.skip_reasons, stored)

    async def _store(self, fetched: Fetched, events: list[ParsedEvent], sport: str) -> Stored:
        fetch_id = uuid.uuid4().hex
        rows = await asyncio.to_thread(_snapshot_rows, fetch_id, fetched, events)
        quota = fetched.quota
        fetch = {
            "id": fetch_id,
            "fetched_at": fetched.fetched_at,
            "source": fetched.source,
            "endpoint": fetched.endpoint,
            "sport_key": sport,
            "request": fetched.request,
            "snapshot_at": fetched.snapshot_at,
            "credits_charged": fetched.cost.charged,
            "quota_remaining": quota.remaining if quota else None,
            "quota_used": quota.used if quota else None,
            "events": len(events),
            "prices": len(rows),
        }
        return await self.history.record(fetch, rows)

    # ------------------------------------------------------------ computations

    async def arbitrage(self, request: OddsRequest, query: ArbitrageQuery) -> tuple[Board, ArbitrageReport]:
        board = await self.odds(request)

        def scan() -> ArbitrageReport:
            with gc_paused():
                return find_arbitrage([e.odds for e in board.events], query)

        return board, await asyncio.to_thread(scan)

    async def margins(self, request: OddsRequest) -> tuple[Board, list[BookmakerMargin]]:
        board = await self.odds(request)
        margins = bookmaker_margins((e.odds for e in board.events), request.markets[0])
        return board, margins

    async def movement(self, event_id: str, market: str | None) -> Movement:
        """Opening vs latest price per bookmaker and outcome over the stored snapshots of ``event_id``."""
        rows = await self.history.event_prices(event_id, market, MAX_MOVEMENT_ROWS + 1)
        if not rows:
            which = f" in market {market!r}" if market else ""
            raise NotFoundError(
                f"no stored prices for event {event_id!r}{which}; get_odds and get_event_odds store every odds "
                "answer they fetch, so call one of them (at different times) first",
                context={"argument": "event_id"},
            )
        truncated = len(rows) > MAX_MOVEMENT_ROWS
        rows = rows[:MAX_MOVEMENT_ROWS]
        points = [
            PricePoint(
                r["bookmaker"],
                r["market"],
                r["outcome"],
                r["description"],
                None if r["point"] is None else float(r["point"]),
                float(r["price"]),
                as_utc(r["last_update"]).timestamp(),
            )
            for r in rows
        ]
        series = await asyncio.to_thread(odds_movement, points)
        seen = [as_utc(r["last_update"]) for r in rows]
        return Movement(
            event_id=event_id,
            sport_key=rows[-1]["sport_key"],
            commence_time=as_utc(rows[-1]["commence_time"]),
            sources=sorted({r["source"] for r in rows}),
            prices_read=len(rows),
            truncated=truncated,
            first_seen=min(seen),
            last_seen=max(seen),
            series=series,
        )

    # ------------------------------------------------------------ quota

    async def quota(self, refresh: bool) -> tuple[Quota | None, bool]:
        """The latest known quota, read afresh (a free request) when asked or unknown; and whether
        an upstream request was made."""
        source = self.source()
        known = source.last_quota()
        if source.name != "theoddsapi" or (known is not None and not refresh):
            return known, False
        return await source.refresh_quota(), True

    async def close(self) -> None:
        if self._source is not None:
            await self._source.close()
