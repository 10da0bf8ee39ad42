"""Kalshi trade-api/v2: public market data, and (with API keys) live orders. No official SDK.

Facts this adapter relies on (Kalshi's docs):

- Public: ``/events`` (``with_nested_markets=true``; it leaves multivariate combo/parlay events out,
  and any market carrying ``mve_collection_ticker`` is dropped from search here too),
  ``/markets/{ticker}``, ``/events/{event_ticker}`` (series ticker, category),
  ``/series/{series}/markets/{ticker}/candlesticks`` (``period_interval`` 1, 60 or 1440 minutes) and
  ``/markets/{ticker}/orderbook``.
- The book holds BIDS ONLY: ``orderbook_fp.yes_dollars`` and ``orderbook_fp.no_dollars`` are
  ``[price, count]`` string pairs sorted ascending, the best bid LAST. A YES ask is the other side of
  a NO bid: YES ask = 1 - NO bid (so the best YES ask = 1 - best NO bid), and the mirror for NO.
- Prices are fixed-point dollar strings (``"0.5600"``) and counts fixed-point strings (``"10.00"``),
  parsed with Decimal (the integer-cent fields were removed in 2026). ``balance`` and
  ``portfolio_value`` of ``/portfolio/balance`` are still integer cents.
- Valid prices come from ``price_ranges`` (``price_level_structure``): start, end, step.
- Orders: ``POST /portfolio/events/orders`` (V2): ``side`` ``bid``/``ask`` on the YES leg, ``price``
  and ``count`` strings, ``client_order_id``, ``time_in_force``, ``self_trade_prevention_type``; no
  market orders. Buying NO at q is sent as an ask on YES at 1 - q (Kalshi nets YES and NO).
  ``DELETE /portfolio/events/orders/{id}`` cancels; ``GET /portfolio/orders`` finds an order by
  its ``client_order_id`` when a submission's outcome is unknown. 429s carry no ``Retry-After``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, cast

from nt_mcp.adapters.prediction.http import VenueHTTP
from nt_mcp.adapters.prediction.kalshi_auth import KalshiSigner, signing_path
from nt_mcp.adapters.prediction.models import (
    BookLevel,
    LiveOrder,
    MarketInfo,
    OrderBook,
    PriceHistory,
    PricePoint,
    Side,
    TickRange,
    clean_untrusted_text,
)
from nt_mcp.adapters.prediction.polymarket import dec, now_utc, parse_time
from nt_mcp.errors import NotFoundError, ValidationError

SERVICE = "kalshi"
TICKER = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,99}$")
MARKET_TTL_S = 30.0
EVENT_TTL_S = 300.0
SEARCH_TTL_S = 30.0
HISTORY_TTL_S = 60.0
SEARCH_PAGES = 3
PERIODS = (1, 60, 1440)
STATUS_QUERY = {"open": "open", "closed": "closed", "resolved": "settled"}
FINAL_STATUSES = {"finalized", "settled"}
TIME_IN_FORCE = {"gtc": "good_till_canceled", "ioc": "immediate_or_cancel"}
CENTS = Decimal("0.01")


def check_ticker(ticker: str) -> str:
    """A Kalshi market ticker (upper-cased): letters, digits, dot, dash, underscore; refused
    otherwise before any request is made."""
    value = ticker.strip().upper()
    if not TICKER.match(value):
        raise ValidationError(
            f"{ticker[:40]!r} is not a Kalshi market ticker (e.g. KXHIGHNY-24JAN01-T60).", argument="id"
        )
    return value


def _pairs(rows: Any) -> list[tuple[Decimal, Decimal]]:
    out = []
    for row in rows or []:
        if isinstance(row, list | tuple) and len(row) >= 2:
            price, count = dec(row[0]), dec(row[1])
            if price is not None and count is not None and count > 0:
                out.append((price, count))
    return out


def book_from_bids(
    market_id: str,
    side: Side,
    yes_bids: list[tuple[Decimal, Decimal]],
    no_bids: list[tuple[Decimal, Decimal]],
    fetched_at: datetime,
) -> OrderBook:
    """Both sides' bids (ascending, best last) -> ``side``'s book best first; asks = 1 - the other side's bids."""
    own, other = (yes_bids, no_bids) if side == "yes" else (no_bids, yes_bids)
    other_name = "NO" if side == "yes" else "YES"
    return OrderBook(
        venue="kalshi",
        fetched_at=fetched_at,
        market_id=market_id,
        side=side,
        bids=[BookLevel(price=p, size=c) for p, c in reversed(own)],
        asks=[BookLevel(price=Decimal(1) - p, size=c) for p, c in reversed(other)],
        derived=f"Kalshi sends bids only: {side.upper()} asks are 1 - {other_name} bids",
    )


class Kalshi:
    venue = "kalshi"

    def __init__(self, http: VenueHTTP, cache: Any, signer: KalshiSigner | None = None) -> None:
        self.http = http
        self.cache = cache
        self.signer = signer

    @property
    def has_keys(self) -> bool:
        return self.signer is not None

    async def _cached(self, key: str, ttl_s: float, load: Callable[[], Awaitable[Any]]) -> tuple[Any, datetime]:
        async def stamped() -> dict[str, Any]:
            return {"fetched_at": now_utc().isoformat(), "body": await load()}

        entry = await self.cache.get_or_load(f"prediction:kalshi:{key}", stamped, ttl_s)
        return entry["body"], datetime.fromisoformat(entry["fetched_at"])

    # ---- markets ----

    def parse_market(
        self,
        raw: dict[str, Any],
        fetched_at: datetime,
        event: dict[str, Any] | None = None,
        *,
        with_rules: bool = False,
    ) -> MarketInfo:
        venue_status = str(raw.get("status") or "")
        result = str(raw.get("result") or "").lower()
        final = venue_status in FINAL_STATUSES and result in ("yes", "no", "void")
        status = "resolved" if final else ("open" if venue_status in ("active", "open") else "closed")
        ranges = [
            TickRange(start=s, end=e, step=st)
            for r in raw.get("price_ranges") or []
            if isinstance(r, dict)
            for s, e, st in [(dec(r.get("start")), dec(r.get("end")), dec(r.get("step")))]
            if s is not None and e is not None and st is not None and st > 0
        ]
        rules = "\n\n".join(str(r) for r in (raw.get("rules_primary"), raw.get("rules_secondary")) if r)
        event = event or {}
        ticker = str(raw.get("ticker"))
        return MarketInfo(
            venue="kalshi",
            fetched_at=fetched_at,
            id=ticker,
            title=clean_untrusted_text(str(raw.get("title") or raw.get("yes_sub_title") or ticker), 500) or ticker,
            event=raw.get("event_ticker"),
            event_title=clean_untrusted_text(event.get("title"), 500),
            category=event.get("category") or raw.get("category") or None,
            status=status,
            venue_status=venue_status,
            outcomes=[str(raw.get("yes_sub_title") or "Yes"), str(raw.get("no_sub_title") or "No")],
            yes_bid=dec(raw.get("yes_bid_dollars")),
            yes_ask=dec(raw.get("yes_ask_dollars")),
            last_price=dec(raw.get("last_price_dollars")),
            volume=dec(raw.get("volume_fp")),
            close_time=parse_time(raw.get("close_time")),
            resolution=cast(Literal["yes", "no", "void"], result) if final else None,
            resolution_final=final,
            tick_ranges=ranges or [TickRange(start=CENTS, end=Decimal("0.99"), step=CENTS)],
            multivariate=bool(raw.get("mve_collection_ticker")),
            url=f"https://kalshi.com/markets/{ticker.lower()}",
            rules=clean_untrusted_text(rules) if with_rules and rules else None,
        )

    async def event(self, event_ticker: str) -> dict[str, Any]:
        body, _ = await self._cached(
            f"event:{event_ticker}",
            EVENT_TTL_S,
            lambda: self.http.get_json(f"/events/{event_ticker}", f"event {event_ticker}"),
        )
        event = body.get("event") if isinstance(body, dict) else None
        return event if isinstance(event, dict) else {}

    async def market(self, ticker: str, *, with_rules: bool = False, with_event: bool = False) -> MarketInfo:
        value = check_ticker(ticker)
        body, fetched_at = await self._cached(
            f"market:{value}", MARKET_TTL_S, lambda: self.http.get_json(f"/markets/{value}", f"market {value}")
        )
        raw = body.get("market") if isinstance(body, dict) else None
        if not isinstance(raw, dict):
            raise NotFoundError(f"Kalshi has no market {value}.", context={"service": SERVICE})
        event = None
        if with_event and raw.get("event_ticker"):
            with suppress(NotFoundError):  # the event only adds its title and category
                event = await self.event(str(raw["event_ticker"]))
        return self.parse_market(raw, fetched_at, event, with_rules=with_rules)

    async def search(
        self, query: str | None, category: str | None, status: str, sort: str, limit: int
    ) -> list[MarketInfo]:
        """Markets of up to SEARCH_PAGES pages of ``/events`` (200 each), filtered by text and
        category here (Kalshi has no text search); multivariate markets are left out."""
        markets: list[MarketInfo] = []
        cursor: str | None = None
        for _page in range(SEARCH_PAGES):
            params = {
                "status": STATUS_QUERY.get(status, "open"),
                "with_nested_markets": "true",
                "limit": 200,
                "cursor": cursor,
            }
            body, fetched_at = await self._cached(
                f"events:{json.dumps(params, sort_keys=True)}",
                SEARCH_TTL_S,
                lambda p=params: self.http.get_json("/events", "event list", p),  # type: ignore[misc]
            )
            for event in (body.get("events") or []) if isinstance(body, dict) else []:
                if not isinstance(event, dict):
                    continue
                if category and str(event.get("category") or "").lower() != category.lower():
                    continue
                for raw in event.get("markets") or []:
                    if not isinstance(raw, dict) or raw.get("mve_collection_ticker"):
                        continue
                    market = self.parse_market(raw, fetched_at, event)
                    text = " ".join(filter(None, [market.title, market.event_title, market.id, *market.outcomes]))
                    if query and query.lower() not in text.lower():
                        continue
                    markets.append(market)
            cursor = body.get("cursor") if isinstance(body, dict) else None
            if not cursor or (not query and not category and len(markets) >= limit):
                break
        key: dict[str, Callable[[MarketInfo], Any]] = {
            "volume": lambda m: -(m.volume or 0),
            "closing": lambda m: m.close_time or datetime.max.replace(tzinfo=UTC),
            "liquidity": lambda m: -(m.volume or 0),
            "newest": lambda m: -(m.close_time or datetime.min.replace(tzinfo=UTC)).timestamp(),
        }
        return sorted(markets, key=key.get(sort, key["volume"]))[:limit]

    # ---- book and history ----

    async def book(self, market: MarketInfo, side: Side) -> OrderBook:
        body = await self.http.get_json(f"/markets/{market.id}/orderbook", f"order book of {market.id}")
        fetched_at = now_utc()
        book = body.get("orderbook_fp") if isinstance(body, dict) else None
        book = book if isinstance(book, dict) else {}
        return book_from_bids(
            market.id, side, _pairs(book.get("yes_dollars")), _pairs(book.get("no_dollars")), fetched_at
        )

    async def history(
        self, market: MarketInfo, start: datetime | None, end: datetime | None, fidelity: int
    ) -> PriceHistory:
        """YES price per candle (last trade close, else the mid of the closing bid and ask)."""
        period = next((p for p in PERIODS if p >= fidelity), PERIODS[-1])
        note = f"fidelity {fidelity} min served as Kalshi's {period}-minute candles" if period != fidelity else None
        end = end or now_utc()
        start = start or end - timedelta(minutes=period * 500)
        event = await self.event(str(market.event)) if market.event else {}
        series = event.get("series_ticker")
        if not series:
            raise NotFoundError(f"Kalshi did not name the series of {market.id}.", context={"service": SERVICE})
        params = {"start_ts": int(start.timestamp()), "end_ts": int(end.timestamp()), "period_interval": period}
        path = f"/series/{series}/markets/{market.id}/candlesticks"
        body, fetched_at = await self._cached(
            f"candles:{path}:{json.dumps(params, sort_keys=True)}",
            HISTORY_TTL_S,
            lambda: self.http.get_json(path, f"price history of {market.id}", params),
        )
        points = []
        for candle in body.get("candlesticks") or [] if isinstance(body, dict) else []:
            if not isinstance(candle, dict) or not isinstance(candle.get("end_period_ts"), int | float):
                continue
            price = (candle.get("price") or {}).get("close_dollars") if isinstance(candle.get("price"), dict) else None
            p = dec(price)
            if p is None:
                bid = (
                    dec((candle.get("yes_bid") or {}).get("close_dollars"))
                    if isinstance(candle.get("yes_bid"), dict)
                    else None
                )
                ask = (
                    dec((candle.get("yes_ask") or {}).get("close_dollars"))
                    if isinstance(candle.get("yes_ask"), dict)
                    else None
                )
                p = (bid + ask) / 2 if bid is not None and ask is not None else None
            if p is not None:
                points.append(PricePoint(t=datetime.fromtimestamp(int(candle["end_period_ts"]), UTC), p=p))
        if not points:
            note = (note + "; " if note else "") + "the venue returned no candles for this range"
        return PriceHistory(
            venue="kalshi",
            fetched_at=fetched_at,
            market_id=market.id,
            points=points,
            fidelity_minutes=period,
            source=f"{path} start_ts={params['start_ts']} end_ts={params['end_ts']} period_interval={period}",
            note=note,
        )

    # ---- authenticated: live orders ----

    def _auth(self, method: str, path: str) -> Callable[[], dict[str, str]]:
        signer = self.signer
        if signer is None:
            raise ValidationError(
                "Kalshi live trading needs NT_KALSHI_KEY_ID and NT_KALSHI_PRIVATE_KEY_FILE.", argument="mode"
            )
        signed = signing_path(self.http.base_url, path)
        return lambda: signer.headers(method, signed)

    @staticmethod
    def order_body(
        ticker: str, action: str, side: Side, count: Decimal, price: Decimal, time_in_force: str, client_order_id: str
    ) -> dict[str, Any]:
        """The V2 order: everything on the YES leg. Buy YES at p -> bid p; sell YES at p -> ask p;
        buy NO at q -> ask 1 - q; sell NO at q -> bid 1 - q."""
        yes_price = price if side == "yes" else Decimal(1) - price
        bid = (action == "buy") == (side == "yes")
        return {
            "ticker": ticker,
            "client_order_id": client_order_id,
            "side": "bid" if bid else "ask",
            "count": f"{count:.2f}",
            "price": f"{yes_price:.4f}",
            "time_in_force": TIME_IN_FORCE[time_in_force],
            "self_trade_prevention_type": "taker_at_cross",
        }

    def parse_order(self, raw: dict[str, Any], time_in_force: str | None = None) -> LiveOrder:
        body: dict[str, Any] = raw["order"] if isinstance(raw.get("order"), dict) else raw
        filled = dec(body.get("fill_count_fp", body.get("fill_count"))) or Decimal(0)
        remaining = dec(body.get("remaining_count_fp", body.get("remaining_count")))
        status = body.get("status")
        if not status:  # the V2 create answer carries counts, not a status
            status = "executed" if remaining == 0 else ("canceled" if time_in_force == "ioc" else "resting")
        return LiveOrder(
            venue="kalshi",
            fetched_at=now_utc(),
            order_id=str(body.get("order_id")),
            client_order_id=body.get("client_order_id"),
            status=str(status),
            filled_count=filled,
            remaining_count=remaining,
            average_fill_price=dec(body.get("average_fill_price")),
            average_fee_paid=dec(body.get("average_fee_paid")),
        )

    async def submit_order(self, body: dict[str, Any], time_in_force: str) -> LiveOrder:
        """Send once; a timeout or 5xx leaves the outcome unknown (the caller looks the order up)."""
        path = "/portfolio/events/orders"
        answer = await self.http.send("POST", path, "the order", body, self._auth("POST", path))
        return self.parse_order(answer if isinstance(answer, dict) else {}, time_in_force)

    async def find_order(self, ticker: str, client_order_id: str) -> LiveOrder:
        path = "/portfolio/orders"
        body = await self.http.get_json(path, "orders", {"ticker": ticker, "limit": 200}, self._auth("GET", path))
        for raw in body.get("orders") or [] if isinstance(body, dict) else []:
            if isinstance(raw, dict) and raw.get("client_order_id") == client_order_id:
                return self.parse_order(raw)
        raise NotFoundError(f"Kalshi has no order {client_order_id}.", context={"service": SERVICE})

    async def get_order(self, order_id: str) -> LiveOrder:
        path = f"/portfolio/orders/{order_id}"
        body = await self.http.get_json(path, f"order {order_id}", headers=self._auth("GET", path))
        return self.parse_order(body if isinstance(body, dict) else {})

    async def cancel_order(self, order_id: str) -> LiveOrder:
        path = f"/portfolio/events/orders/{order_id}"
        body = await self.http.send(
            "DELETE", path, f"order {order_id}", headers=self._auth("DELETE", path), idempotent=True
        )
        order = self.parse_order(body if isinstance(body, dict) else {})
        if order.order_id == "None":
            order = order.model_copy(update={"order_id": order_id, "status": "canceled"})
        return order

    async def balance(self) -> dict[str, Decimal]:
        """Cash balance and portfolio value in dollars (Kalshi sends integer cents)."""
        path = "/portfolio/balance"
        body = await self.http.get_json(path, "balance", headers=self._auth("GET", path))
        body = body if isinstance(body, dict) else {}
        return {
            k: Decimal(int(body[k])) * CENTS for k in ("balance", "portfolio_value") if isinstance(body.get(k), int)
        }

    async def positions(self) -> list[dict[str, Any]]:
        path = "/portfolio/positions"
        body = await self.http.get_json(path, "positions", {"limit": 200}, self._auth("GET", path))
        rows = body.get("market_positions") if isinstance(body, dict) else None
        return [r for r in rows or [] if isinstance(r, dict)]

    async def close(self) -> None:
        await self.http.close()
