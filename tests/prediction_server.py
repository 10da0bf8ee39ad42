"""A local HTTP server answering like Polymarket (Gamma + CLOB) and Kalshi, for `nt-mcp serve` subprocesses.

It serves the same documented shapes as the respx fakes (`tests.prediction_fakes`) on 127.0.0.1:
``/gamma/...``, ``/clob/...`` and ``/kalshi/trade-api/v2/...``. It runs uvicorn in a thread and stops
when the context manager exits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.prediction_fakes import (
    EVENT,
    NO_TOKEN,
    SERIES,
    TICKER,
    YES_TOKEN,
    clob_book,
    gamma_market,
    kalshi_book,
    kalshi_event,
    kalshi_market,
)
from tests.servers import free_port

BOOKS = {
    YES_TOKEN: clob_book(YES_TOKEN, [("0.54", "100"), ("0.53", "200")], [("0.56", "150"), ("0.57", "300")]),
    NO_TOKEN: clob_book(NO_TOKEN, [("0.44", "150"), ("0.43", "300")], [("0.46", "100"), ("0.47", "200")]),
}
KALSHI_BOOK = kalshi_book(
    yes=[("0.4100", "500.00"), ("0.4300", "120.00")], no=[("0.5300", "300.00"), ("0.5500", "80.00")]
)


def _app() -> Starlette:
    market = gamma_market()

    def ok(body: Any) -> JSONResponse:
        return JSONResponse(body)

    async def gamma_market_by_id(request: Request) -> JSONResponse:
        if request.path_params["market_id"] != market["id"]:
            return JSONResponse({"error": "not found"}, status_code=404)
        return ok(market)

    async def gamma_markets(request: Request) -> JSONResponse:
        return ok([market])

    async def gamma_search(request: Request) -> JSONResponse:
        return ok({"events": [{"title": "Fed", "markets": [market]}], "tags": []})

    async def clob_book_route(request: Request) -> JSONResponse:
        book = BOOKS.get(request.query_params.get("token_id", ""))
        return ok(book) if book else JSONResponse({"error": "No orderbook exists"}, status_code=404)

    async def clob_history(request: Request) -> JSONResponse:
        return ok({"history": [{"t": 1796000000, "p": 0.52}, {"t": 1796003600, "p": 0.55}]})

    async def kalshi_market_route(request: Request) -> JSONResponse:
        if request.path_params["ticker"] != TICKER:
            return JSONResponse({"error": {"code": "not_found", "message": "market not found"}}, status_code=404)
        return ok({"market": kalshi_market()})

    async def kalshi_events(request: Request) -> JSONResponse:
        return ok({"events": [kalshi_event()], "cursor": ""})

    async def kalshi_event_route(request: Request) -> JSONResponse:
        return ok({"event": kalshi_event(), "markets": [kalshi_market()]})

    async def kalshi_orderbook(request: Request) -> JSONResponse:
        return ok(KALSHI_BOOK)

    async def kalshi_candles(request: Request) -> JSONResponse:
        return ok(
            {"ticker": TICKER, "candlesticks": [{"end_period_ts": 1796000000, "price": {"close_dollars": "0.4200"}}]}
        )

    k = "/kalshi/trade-api/v2"
    return Starlette(
        routes=[
            Route("/gamma/markets/{market_id}", gamma_market_by_id),
            Route("/gamma/markets", gamma_markets),
            Route("/gamma/public-search", gamma_search),
            Route("/clob/book", clob_book_route),
            Route("/clob/prices-history", clob_history),
            Route(f"{k}/markets/{{ticker}}/orderbook", kalshi_orderbook),
            Route(f"{k}/markets/{{ticker}}", kalshi_market_route),
            Route(f"{k}/events/{EVENT}", kalshi_event_route),
            Route(f"{k}/events", kalshi_events),
            Route(f"{k}/series/{SERIES}/markets/{{ticker}}/candlesticks", kalshi_candles),
        ]
    )


@contextmanager
def fake_venues() -> Iterator[dict[str, str]]:
    """Serve both venues on a free loopback port; yields the NT_ settings pointing at it."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(_app(), host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    try:
        yield {
            "NT_POLYMARKET_GAMMA_URL": f"{base}/gamma",
            "NT_POLYMARKET_CLOB_URL": f"{base}/clob",
            "NT_KALSHI_API_URL": f"{base}/kalshi/trade-api/v2",
        }
    finally:
        server.should_exit = True
        thread.join(timeout=10)
