"""Polymarket, public endpoints only: Gamma (markets, events, search) and the CLOB (books, prices, history).

Facts this adapter relies on (Polymarket's docs):

- Gamma ``/markets``: ``outcomes``, ``outcomePrices`` and ``clobTokenIds`` are JSON-encoded *strings*
  (``"[\\"Yes\\", \\"No\\"]"``) aligned by index; index 0 is side ``yes`` here, index 1 side ``no``.
  Listing filters ``active=true&closed=false`` by default (without them Gamma returns markets from
  2020). ``feeSchedule.rate`` (with ``feesEnabled``) gives the taker fee rate; ``orderPriceMinTickSize``
  the tick.
- CLOB ``/book?token_id=``: bids ascending and asks descending, so the best of each is the LAST
  element; ``timestamp`` is epoch milliseconds (a string). ``/midpoint`` answers ``mid`` (or
  ``mid_price``: both are accepted). ``/prices-history``: ``market`` is the TOKEN id; ``interval``
  is exclusive with ``startTs``/``endTs``; ``fidelity`` is in minutes; resolved markets return an
  empty series below fidelity 720 with ``interval=max``, so 720 is used for them.
- Live trading on Polymarket (wallet signing, CLOB API keys) is out of scope: only paper orders.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from nt_mcp.adapters.prediction.http import VenueHTTP
from nt_mcp.adapters.prediction.models import (
    BookLevel,
    MarketInfo,
    OrderBook,
    PriceHistory,
    PricePoint,
    Side,
    TickRange,
    clean_untrusted_text,
)
from nt_mcp.errors import ExternalAPIError, NotFoundError, ValidationError
from nt_mcp.infra.cache import Cache

GAMMA = "polymarket-gamma"
CLOB = "polymarket-clob"
MARKET_ID = re.compile(r"^[0-9]{1,20}$")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,199}$")
RESOLVED_MIN_FIDELITY = 720
MARKET_TTL_S = 30.0
SEARCH_TTL_S = 30.0
HISTORY_TTL_S = 60.0
SORT_FIELDS = {"volume": "volume24hr", "liquidity": "liquidity", "closing": "endDate", "newest": "startDate"}


def now_utc() -> datetime:
    return datetime.now(UTC)


def dec(value: Any) -> Decimal | None:
    """A venue number (string or JSON number) as a Decimal; None when absent or unparsable."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def json_list(value: Any) -> list[Any]:
    """Gamma's JSON-encoded string arrays (``"[\\"Yes\\", \\"No\\"]"``); a real list passes through."""
    if isinstance(value, list):
        return value
    if isinstance(value, str) and value.strip():
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return []
        return parsed if isinstance(parsed, list) else []
    return []


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_market_id(market_id: str) -> str:
    """A Gamma market id (digits) or slug (lowercase letters, digits, dashes); refused otherwise
    before any request is made."""
    value = market_id.strip()
    if MARKET_ID.match(value) or SLUG.match(value):
        return value
    raise ValidationError(
        f"{market_id[:40]!r} is not a Polymarket market id (digits) or slug (lowercase words joined by -).",
        argument="id",
    )


class Polymarket:
    venue = "polymarket"

    def __init__(self, gamma: VenueHTTP, clob: VenueHTTP, cache: Cache) -> None:
        self.gamma = gamma
        self.clob = clob
        self.cache = cache

    async def _cached(self, key: str, ttl_s: float, load: Callable[[], Awaitable[Any]]) -> tuple[Any, datetime]:
        """(body, fetched_at): the venue's answer, cached with the time it was fetched."""

        async def stamped() -> dict[str, Any]:
            return {"fetched_at": now_utc().isoformat(), "body": await load()}

        entry = await self.cache.get_or_load(f"prediction:polymarket:{key}", stamped, ttl_s)
        return entry["body"], datetime.fromisoformat(entry["fetched_at"])

    # ---- markets ----

    def parse_market(self, raw: dict[str, Any], fetched_at: datetime, *, with_rules: bool = False) -> MarketInfo:
        outcomes = [str(o) for o in json_list(raw.get("outcomes"))]
        prices = [dec(p) for p in json_list(raw.get("outcomePrices"))]
        tokens = [str(t) for t in json_list(raw.get("clobTokenIds"))]
        if len(outcomes) != 2 or len(tokens) not in (0, 2):
            raise ExternalAPIError(
                f"Polymarket market {raw.get('id')} is not a two-outcome market.", service=GAMMA, retryable=False
            )
        closed = bool(raw.get("closed"))
        resolution: Literal["yes", "no"] | None = None
        final = False
        if closed and len(prices) == 2 and {prices[0], prices[1]} == {Decimal(0), Decimal(1)}:
            uma = raw.get("umaResolutionStatus")
            final = uma in (None, "", "resolved")
            resolution = "yes" if prices[0] == 1 else "no"
        status = "resolved" if final else ("closed" if closed or not raw.get("active", True) else "open")
        if raw.get("acceptingOrders") is False and status == "open":
            status = "closed"
        schedule = raw["feeSchedule"] if isinstance(raw.get("feeSchedule"), dict) else {}
        fee_rate = (dec(schedule.get("rate")) or Decimal(0)) if raw.get("feesEnabled") else Decimal(0)
        tick = dec(raw.get("orderPriceMinTickSize")) or Decimal("0.01")
        events = raw.get("events") if isinstance(raw.get("events"), list) else []
        event = events[0] if events and isinstance(events[0], dict) else {}
        slug = raw.get("slug")
        return MarketInfo(
            venue="polymarket",
            fetched_at=fetched_at,
            id=str(raw.get("id")),
            title=clean_untrusted_text(str(raw.get("question") or raw.get("title") or ""), 500) or "",
            event=event.get("slug"),
            event_title=clean_untrusted_text(event.get("title"), 500),
            category=raw.get("category") or event.get("category"),
            status=status,
            venue_status=f"active={raw.get('active')} closed={raw.get('closed')}",
            outcomes=outcomes,
            yes_bid=dec(raw.get("bestBid")),
            yes_ask=dec(raw.get("bestAsk")),
            last_price=prices[0] if prices else None,
            volume=dec(raw.get("volumeNum") if raw.get("volumeNum") is not None else raw.get("volume")),
            close_time=parse_time(raw.get("endDate")),
            resolution=resolution,
            resolution_final=final,
            tick_ranges=[TickRange(start=tick, end=Decimal(1) - tick, step=tick)],
            fee_rate=fee_rate,
            token_ids=tokens,
            url=f"https://polymarket.com/market/{slug}" if slug else None,
            rules=clean_untrusted_text(raw.get("description")) if with_rules else None,
        )

    async def market(self, market_id: str, *, with_rules: bool = False) -> MarketInfo:
        """One market by Gamma id or slug."""
        value = check_market_id(market_id)

        async def load() -> Any:
            if MARKET_ID.match(value):
                return await self.gamma.get_json(f"/markets/{value}", f"market {value}")
            found = await self.gamma.get_json("/markets", f"market {value}", {"slug": value})
            if not found:
                raise NotFoundError(f"Polymarket has no market with slug {value!r}.", context={"service": GAMMA})
            return found[0] if isinstance(found, list) else found

        body, fetched_at = await self._cached(f"market:{value}", MARKET_TTL_S, load)
        if not isinstance(body, dict) or "id" not in body:
            raise NotFoundError(f"Polymarket has no market {value!r}.", context={"service": GAMMA})
        return self.parse_market(body, fetched_at, with_rules=with_rules)

    async def search(
        self, query: str | None, category: str | None, status: str, sort: str, limit: int
    ) -> list[MarketInfo]:
        """Markets by text (Gamma ``/public-search``) or the listing (``/markets``), open by default."""
        if query:
            params: dict[str, Any] = {
                "q": query,
                "limit_per_type": min(50, max(limit, 10)),
                "events_status": "active" if status == "open" else "closed",
            }

            body, fetched_at = await self._cached(
                f"search:{json.dumps(params, sort_keys=True)}",
                SEARCH_TTL_S,
                lambda: self.gamma.get_json("/public-search", "search", params),
            )
            events = (body.get("events") or []) if isinstance(body, dict) else []
            raws = [m for e in events if isinstance(e, dict) for m in (e.get("markets") or []) if isinstance(m, dict)]
        else:
            params = {
                "limit": min(100, limit * 2),
                "order": SORT_FIELDS.get(sort, "volume24hr"),
                "ascending": "true" if sort == "closing" else "false",
            }
            params |= {"active": "true", "closed": "false"} if status == "open" else {"closed": "true"}
            body, fetched_at = await self._cached(
                f"markets:{json.dumps(params, sort_keys=True)}",
                SEARCH_TTL_S,
                lambda: self.gamma.get_json("/markets", "market list", params),
            )
            raws = [m for m in (body or []) if isinstance(m, dict)]
        markets: list[MarketInfo] = []
        for raw in raws:
            try:
                market = self.parse_market(raw, fetched_at)
            except ExternalAPIError:
                continue  # not a two-outcome market
            if status == "open" and market.status != "open":
                continue
            if status != "open" and market.status == "open":
                continue
            if category and (market.category or "").lower() != category.lower():
                continue
            markets.append(market)
        return markets[:limit]

    # ---- books, prices, history ----

    def token_for(self, market: MarketInfo, side: Side) -> str:
        if len(market.token_ids) != 2:
            raise ValidationError(f"Polymarket market {market.id} has no order book (no CLOB tokens).", argument="id")
        return market.token_ids[0 if side == "yes" else 1]

    async def book(self, market: MarketInfo, side: Side) -> OrderBook:
        """The CLOB book of ``side``'s token, best first (the CLOB sends the best LAST)."""
        token = self.token_for(market, side)
        body = await self.clob.get_json("/book", f"order book of {market.id}", {"token_id": token})
        fetched_at = now_utc()

        def levels(key: str) -> list[BookLevel]:
            rows = (body.get(key) or []) if isinstance(body, dict) else []
            out = []
            for row in rows:
                if isinstance(row, dict):
                    price, size = dec(row.get("price")), dec(row.get("size"))
                    if price is not None and size is not None and size > 0:
                        out.append(BookLevel(price=price, size=size))
            return list(reversed(out))  # bids ascending / asks descending: the best is last

        stamp = dec(body.get("timestamp")) if isinstance(body, dict) else None
        return OrderBook(
            venue="polymarket",
            fetched_at=fetched_at,
            market_id=market.id,
            side=side,
            bids=levels("bids"),
            asks=levels("asks"),
            venue_timestamp=datetime.fromtimestamp(float(stamp) / 1000, UTC) if stamp else None,
        )

    async def midpoint(self, market: MarketInfo, side: Side) -> Decimal | None:
        """The CLOB midpoint of ``side``'s token (field ``mid`` or ``mid_price``)."""
        body = await self.clob.get_json(
            "/midpoint", f"midpoint of {market.id}", {"token_id": self.token_for(market, side)}
        )
        if not isinstance(body, dict):
            return None
        return dec(body.get("mid", body.get("mid_price")))

    async def history(
        self, market: MarketInfo, start: datetime | None, end: datetime | None, fidelity: int
    ) -> PriceHistory:
        """YES price history from ``/prices-history`` (``market`` = the YES token id)."""
        token = self.token_for(market, "yes")
        note = None
        params: dict[str, Any] = {"market": token}
        if start is not None or end is not None:
            params |= {
                "startTs": int((start or datetime(1970, 1, 1, tzinfo=UTC)).timestamp()),
                "endTs": int((end or now_utc()).timestamp()),
            }
        else:
            params["interval"] = "max"
            if market.status != "open" and fidelity < RESOLVED_MIN_FIDELITY:
                note = f"fidelity raised to {RESOLVED_MIN_FIDELITY} min: closed markets return nothing below it"
                fidelity = RESOLVED_MIN_FIDELITY
        params["fidelity"] = fidelity
        body, fetched_at = await self._cached(
            f"history:{json.dumps(params, sort_keys=True)}",
            HISTORY_TTL_S,
            lambda: self.clob.get_json("/prices-history", f"price history of {market.id}", params),
        )
        rows = body.get("history") if isinstance(body, dict) else None
        points = [
            PricePoint(t=datetime.fromtimestamp(int(r["t"]), UTC), p=p)
            for r in rows or []
            if isinstance(r, dict) and isinstance(r.get("t"), int | float)
            for p in [dec(r.get("p"))]
            if p is not None
        ]
        if not points:
            note = (note + "; " if note else "") + "the venue returned no prices for this range"
        shown = ", ".join(f"{k}={v}" for k, v in params.items() if k != "market")
        return PriceHistory(
            venue="polymarket",
            fetched_at=fetched_at,
            market_id=market.id,
            points=points,
            fidelity_minutes=fidelity,
            source=f"CLOB /prices-history market=<yes token> {shown}",
            note=note,
        )

    async def close(self) -> None:
        await self.gamma.close()
        await self.clob.close()
