"""`PredictionVenues`: both venues behind one door, chosen by name, built from Settings.

An answer a venue sends in a shape the adapters cannot read (a missing field, a number where text was
expected, a timestamp out of range) becomes ``EXTERNAL_API_ERROR`` naming the venue, never an
internal error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import httpx
import pydantic

from nt_mcp.adapters.prediction.http import VenueHTTP
from nt_mcp.adapters.prediction.kalshi import SERVICE as KALSHI_SERVICE
from nt_mcp.adapters.prediction.kalshi import Kalshi
from nt_mcp.adapters.prediction.kalshi_auth import KalshiSigner
from nt_mcp.adapters.prediction.models import MarketInfo, OrderBook, PriceHistory, Side, Venue
from nt_mcp.adapters.prediction.polymarket import CLOB, GAMMA, Polymarket
from nt_mcp.config import Settings
from nt_mcp.errors import ExternalAPIError
from nt_mcp.infra.cache import Cache
from nt_mcp.infra.resilience import Upstreams


@contextmanager
def readable(venue: str, what: str) -> Iterator[None]:
    try:
        yield
    except (pydantic.ValidationError, ValueError, TypeError, KeyError, ArithmeticError) as error:
        raise ExternalAPIError(
            f"{venue} answered {what} in a shape this server cannot read ({type(error).__name__}).",
            service=venue,
            status=502,
            retryable=False,
        ) from error


class PredictionVenues:
    def __init__(self, polymarket: Polymarket, kalshi: Kalshi) -> None:
        self.polymarket = polymarket
        self.kalshi = kalshi

    async def market(self, venue: Venue, market_id: str, *, with_rules: bool = False) -> MarketInfo:
        with readable(venue, "a market"):
            if venue == "polymarket":
                return await self.polymarket.market(market_id, with_rules=with_rules)
            return await self.kalshi.market(market_id, with_rules=with_rules, with_event=with_rules)

    async def book(self, market: MarketInfo, side: Side) -> OrderBook:
        with readable(market.venue, "an order book"):
            if market.venue == "polymarket":
                return await self.polymarket.book(market, side)
            return await self.kalshi.book(market, side)

    async def history(
        self, market: MarketInfo, start: datetime | None, end: datetime | None, fidelity: int
    ) -> PriceHistory:
        with readable(market.venue, "a price history"):
            if market.venue == "polymarket":
                return await self.polymarket.history(market, start, end, fidelity)
            return await self.kalshi.history(market, start, end, fidelity)

    async def search(
        self, venue: Venue, query: str | None, category: str | None, status: str, sort: str, limit: int
    ) -> list[MarketInfo]:
        source = self.polymarket if venue == "polymarket" else self.kalshi
        with readable(venue, "a market list"):
            return await source.search(query, category, status, sort, limit)

    async def close(self) -> None:
        await self.polymarket.close()
        await self.kalshi.close()


def build_venues(
    settings: Settings, upstreams: Upstreams, cache: Cache, transport: httpx.AsyncBaseTransport | None = None
) -> PredictionVenues:
    """Clients are cheap to build (no connection until the first request); a Kalshi key, when
    configured, is read here so a bad key file fails at start."""
    timeout = settings.prediction_http_timeout_s

    def door(service: str, url: str, rate: float) -> VenueHTTP:
        return VenueHTTP(service, url, upstreams, requests_per_s=rate, timeout_s=timeout, transport=transport)

    poly_rate = settings.polymarket_requests_per_s
    signer = None
    if settings.kalshi_key_id and settings.kalshi_private_key_file:
        signer = KalshiSigner.from_file(settings.kalshi_key_id, settings.kalshi_private_key_file)
    return PredictionVenues(
        Polymarket(
            door(GAMMA, settings.polymarket_gamma_url, poly_rate),
            door(CLOB, settings.polymarket_clob_url, poly_rate),
            cache,
        ),
        Kalshi(door(KALSHI_SERVICE, settings.kalshi_api_url, settings.kalshi_requests_per_s), cache, signer),
    )
