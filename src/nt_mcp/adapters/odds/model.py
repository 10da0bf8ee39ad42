"""What every odds source returns: the raw answer in The Odds API's own JSON shape plus its provenance
(source, fetch time, the request with the key redacted, the quota and what the call cost).

The Odds API's documented cost of a call (usage credits, "x-requests-last"):

- ``/v4/sports`` and ``/v4/sports/{sport}/events``: free.
- ``/v4/sports/{sport}/odds``: markets x regions; with ``bookmakers`` instead of ``regions``, every
  group of 10 bookmakers counts as one region. A response with no events is free.
- ``/v4/sports/{sport}/events/{id}/odds``: markets returned x regions (at most markets asked x regions).
- ``/v4/sports/{sport}/scores``: 1, or 2 with ``daysFrom``.
- historical odds and historical event odds: 10 x the live cost.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from nt_mcp.errors import Category, TradingError

SourceName = Literal["theoddsapi", "files"]
PriceFormat = Literal["decimal", "american"]
# Bookmaker regions of The Odds API v4.
REGIONS = ("us", "us2", "us_dfs", "us_ex", "uk", "eu", "fr", "se", "au")
# Markets the sport-wide /odds endpoint serves ("featured" markets); /events/{id}/odds serves any market key.
FEATURED_MARKETS = ("h2h", "spreads", "totals", "outrights", "h2h_lay", "outrights_lay")
KEY_PATTERN = r"^[a-z0-9_]{1,64}$"  # sport, market and bookmaker keys
EVENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"


class OddsNotConfiguredError(TradingError):
    """No odds source is configured: neither an API key nor a directory of saved responses."""

    code = "NOT_CONFIGURED"
    category = Category.VALIDATION

    def __init__(self) -> None:
        super().__init__(
            "No odds source is configured: set NT_ODDS_API_KEY (The Odds API v4) or NT_ODDS_DIR (a directory of "
            "saved /v4/sports/{sport}/odds responses named <sport_key>.json). The math tools (convert_odds, "
            "remove_margin, calculate_kelly) work without one.",
            context={"settings": ["NT_ODDS_API_KEY", "NT_ODDS_DIR"]},
        )


@dataclass(frozen=True)
class Quota:
    """The Odds API usage credits, from the headers of its latest answer."""

    remaining: int | None  # x-requests-remaining
    used: int | None  # x-requests-used (since the plan's last reset)
    last: int | None  # x-requests-last: what that request cost
    observed_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "remaining": self.remaining,
            "used": self.used,
            "last": self.last,
            "observed_at": self.observed_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Quota:
        return cls(data["remaining"], data["used"], data["last"], datetime.fromisoformat(data["observed_at"]))


@dataclass(frozen=True)
class Cost:
    expected_max: int  # the documented formula for this request
    charged: int | None  # x-requests-last of this call's own upstream request; 0 when cached; None for files
    formula: str


@dataclass(frozen=True)
class Fetched:
    """One answer of an odds source, in The Odds API's JSON shape."""

    data: Any
    source: SourceName
    endpoint: str  # sports, events, odds, event_odds, scores, historical_odds, historical_event_odds
    request: str  # the URL path and query with the key redacted, or the file name
    fetched_at: datetime  # when the upstream answered, or when the file was written
    cost: Cost
    quota: Quota | None  # None for the files source
    cached: bool  # served from the cache: no upstream request was made for this call
    snapshot_at: datetime | None = None  # the historical snapshot's timestamp


@dataclass(frozen=True)
class OddsRequest:
    sport: str
    regions: tuple[str, ...]
    markets: tuple[str, ...]
    bookmakers: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    commence_from: datetime | None = None
    commence_to: datetime | None = None
    at: datetime | None = None  # a historical snapshot (paid plans)


def odds_cost(markets: int, regions: Sequence[str], bookmakers: Sequence[str], historical: bool) -> tuple[int, str]:
    """The documented cost of an odds request: markets x regions (bookmakers: 10 count as one region),
    x10 for historical snapshots. Returns the credits and the formula in words."""
    if bookmakers:
        units = math.ceil(len(bookmakers) / 10)
        unit_text = f"{units} (= {len(bookmakers)} bookmakers / 10, rounded up)"
    else:
        units = len(regions)
        unit_text = f"{units} region(s)"
    factor = 10 if historical else 1
    text = f"{markets} market(s) x {unit_text}" + (" x 10 (historical)" if historical else "")
    return markets * units * factor, text + "; 0 when no events are returned"


class OddsSource(Protocol):
    name: SourceName
    price_format: PriceFormat  # how the prices in ``Fetched.data`` are written

    async def sports(self, all_sports: bool) -> Fetched: ...
    async def events(self, sport: str, commence_from: datetime | None, commence_to: datetime | None) -> Fetched: ...
    async def odds(self, request: OddsRequest) -> Fetched: ...
    async def event_odds(self, event_id: str, request: OddsRequest) -> Fetched: ...
    async def scores(self, sport: str, days_from: int | None) -> Fetched: ...
    async def sport_keys(self) -> set[str] | None: ...  # None: unknown right now (do not refuse)
    def last_quota(self) -> Quota | None: ...
    async def refresh_quota(self) -> Quota | None: ...
    async def close(self) -> None: ...
