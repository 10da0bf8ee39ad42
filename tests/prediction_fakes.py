"""Polymarket and Kalshi answers in their documented shapes, and respx routes serving them.

Shapes follow the venues' docs: Gamma's ``outcomes``/``outcomePrices``/``clobTokenIds`` are
JSON-encoded strings aligned by index; CLOB books list bids ascending and asks descending (best
LAST) with an epoch-ms string ``timestamp``; Kalshi books are bids only (``orderbook_fp`` with
``[price, count]`` fixed-point strings, ascending) and prices are ``*_dollars`` strings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import respx

from nt_mcp.config import Settings
from tests.conftest import make_settings

GAMMA = "https://gamma.test"
CLOB = "https://clob.test"
KALSHI = "https://kalshi.test/trade-api/v2"
YES_TOKEN = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO_TOKEN = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
POLY_ID = "516710"
TICKER = "KXFEDDECISION-26DEC-H0"
EVENT = "KXFEDDECISION-26DEC"
SERIES = "KXFEDDECISION"


def prediction_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings pointing both venues at test hosts, with quick retries and breakers."""
    values: dict[str, Any] = {
        "polymarket_gamma_url": GAMMA,
        "polymarket_clob_url": CLOB,
        "kalshi_api_url": KALSHI,
        "retry_max_attempts": 2,
        "retry_base_s": 0.01,
        "retry_max_backoff_s": 0.02,
        "breaker_fail_max": 3,
        "breaker_reset_timeout_s": 30,
        "polymarket_requests_per_s": 100,
        "kalshi_requests_per_s": 100,
    } | overrides
    return make_settings(tmp_path, **values)


def gamma_market(
    market_id: str = POLY_ID,
    *,
    question: str = "Will the Fed cut rates in December 2026?",
    prices: tuple[str, str] = ("0.55", "0.45"),
    closed: bool = False,
    fee_rate: float | None = 0.04,
    uma: str | None = None,
    description: str = "This market resolves to Yes if the FOMC lowers the target range at its December meeting.",
) -> dict[str, Any]:
    return {
        "id": market_id,
        "question": question,
        "conditionId": "0x8e9b6942b4dac3117dadfacac2edb390b6d62d59c14152774bb5fcd983fc134e",
        "slug": "will-the-fed-cut-rates-in-december-2026",
        "description": description,
        "outcomes": json.dumps(["Yes", "No"]),
        "outcomePrices": json.dumps(list(prices)),
        "clobTokenIds": json.dumps([YES_TOKEN, NO_TOKEN]),
        "active": not closed,
        "closed": closed,
        "acceptingOrders": not closed,
        "enableOrderBook": True,
        "endDate": "2026-12-10T19:00:00Z",
        "volume": "1234567.89",
        "volumeNum": 1234567.89,
        "bestBid": 0.54,
        "bestAsk": 0.56,
        "orderPriceMinTickSize": 0.01,
        "category": "Economics",
        "feesEnabled": fee_rate is not None,
        "feeSchedule": {"exponent": 1, "rate": fee_rate or 0, "takerOnly": True, "rebateRate": 0.25},
        "umaResolutionStatus": uma,
        "events": [{"slug": "fed-december-2026", "title": "Fed decision in December 2026", "category": "Economics"}],
    }


def clob_book(token: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> dict[str, Any]:
    """``bids`` and ``asks`` given best first; sent as the CLOB does (bids ascending, asks descending)."""
    return {
        "market": "0x8e9b6942b4dac3117dadfacac2edb390b6d62d59c14152774bb5fcd983fc134e",
        "asset_id": token,
        "timestamp": "1796083200123",
        "hash": "0xabc123",
        "bids": [{"price": p, "size": s} for p, s in reversed(bids)],
        "asks": [{"price": p, "size": s} for p, s in reversed(asks)],
        "min_order_size": "5",
        "tick_size": "0.01",
        "neg_risk": False,
    }


def kalshi_market(
    ticker: str = TICKER,
    *,
    status: str = "active",
    result: str = "",
    mve: str | None = None,
    title: str = "Will the Fed hold rates at its December 2026 meeting?",
) -> dict[str, Any]:
    market = {
        "ticker": ticker,
        "event_ticker": EVENT,
        "market_type": "binary",
        "title": title,
        "subtitle": "Hold",
        "yes_sub_title": "Hold",
        "no_sub_title": "Hold",
        "status": status,
        "result": result,
        "close_time": "2026-12-10T18:59:00Z",
        "yes_bid_dollars": "0.4300",
        "yes_ask_dollars": "0.4500",
        "no_bid_dollars": "0.5500",
        "no_ask_dollars": "0.5700",
        "last_price_dollars": "0.4400",
        "volume_fp": "48210.00",
        "volume_24h_fp": "1210.00",
        "open_interest_fp": "30211.00",
        "price_level_structure": "linear_cent",
        "price_ranges": [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}],
        "response_price_units": "usd_cent",
        "rules_primary": "If the Federal Reserve holds the target rate at the December 2026 meeting, resolves Yes.",
        "rules_secondary": "Source: the FOMC statement.",
    }
    if mve:
        market["mve_collection_ticker"] = mve
    return market


def kalshi_book(yes: list[tuple[str, str]], no: list[tuple[str, str]]) -> dict[str, Any]:
    """Bids given ascending (best LAST), as Kalshi sends them."""
    return {"orderbook_fp": {"yes_dollars": [list(r) for r in yes], "no_dollars": [list(r) for r in no]}}


def kalshi_event(markets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "event_ticker": EVENT,
        "series_ticker": SERIES,
        "title": "Fed decision in December 2026",
        "category": "Economics",
        "mutually_exclusive": True,
        "markets": markets if markets is not None else [kalshi_market()],
    }


def serve_polymarket(
    router: respx.Router,
    *,
    market: dict[str, Any] | None = None,
    yes_book: dict[str, Any] | None = None,
    no_book: dict[str, Any] | None = None,
) -> None:
    market = market or gamma_market()
    router.get(f"{GAMMA}/markets/{market['id']}").mock(return_value=httpx.Response(200, json=market))
    router.get(f"{GAMMA}/markets", params={"slug": market["slug"]}).mock(
        return_value=httpx.Response(200, json=[market])
    )
    router.get(f"{GAMMA}/markets").mock(return_value=httpx.Response(200, json=[market]))
    router.get(f"{GAMMA}/public-search").mock(
        return_value=httpx.Response(200, json={"events": [{"title": "Fed", "markets": [market]}], "tags": []})
    )
    yes_book = yes_book or clob_book(YES_TOKEN, [("0.54", "100"), ("0.53", "200")], [("0.56", "150"), ("0.57", "300")])
    no_book = no_book or clob_book(NO_TOKEN, [("0.44", "150"), ("0.43", "300")], [("0.46", "100"), ("0.47", "200")])
    router.get(f"{CLOB}/book", params={"token_id": YES_TOKEN}).mock(return_value=httpx.Response(200, json=yes_book))
    router.get(f"{CLOB}/book", params={"token_id": NO_TOKEN}).mock(return_value=httpx.Response(200, json=no_book))
    router.get(f"{CLOB}/prices-history").mock(
        return_value=httpx.Response(200, json={"history": [{"t": 1796000000, "p": 0.52}, {"t": 1796003600, "p": 0.55}]})
    )


def serve_kalshi(
    router: respx.Router, *, market: dict[str, Any] | None = None, book: dict[str, Any] | None = None
) -> None:
    market = market or kalshi_market()
    router.get(f"{KALSHI}/markets/{market['ticker']}").mock(return_value=httpx.Response(200, json={"market": market}))
    router.get(f"{KALSHI}/events/{EVENT}").mock(
        return_value=httpx.Response(200, json={"event": kalshi_event([market]), "markets": [market]})
    )
    router.get(f"{KALSHI}/events").mock(
        return_value=httpx.Response(200, json={"events": [kalshi_event([market])], "cursor": ""})
    )
    book = book or kalshi_book(yes=[("0.41", "500.00"), ("0.43", "120.00")], no=[("0.53", "300.00"), ("0.55", "80.00")])
    router.get(f"{KALSHI}/markets/{market['ticker']}/orderbook").mock(return_value=httpx.Response(200, json=book))
    router.get(f"{KALSHI}/series/{SERIES}/markets/{market['ticker']}/candlesticks").mock(
        return_value=httpx.Response(
            200,
            json={
                "ticker": market["ticker"],
                "candlesticks": [
                    {
                        "end_period_ts": 1796000000,
                        "price": {"close_dollars": "0.4200"},
                        "yes_bid": {"close_dollars": "0.4100"},
                        "yes_ask": {"close_dollars": "0.4300"},
                        "volume_fp": "10.00",
                    },
                    {
                        "end_period_ts": 1796003600,
                        "price": {"close_dollars": None},
                        "yes_bid": {"close_dollars": "0.4300"},
                        "yes_ask": {"close_dollars": "0.4500"},
                        "volume_fp": "0.00",
                    },
                ],
            },
        )
    )
