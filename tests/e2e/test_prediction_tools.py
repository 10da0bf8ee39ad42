"""Every prediction tool through the real MCP client (in memory), the venues faked with respx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal as D
from typing import Any

import httpx
import pytest
import respx
from mcp import Client

from nt_mcp.config import Settings
from nt_mcp.server.app import NtMCPServer, build_server
from nt_mcp.server.guard import Guard
from nt_mcp.server.registry import all_tools
from nt_mcp.tools.registry import Principal
from nt_mcp.tools.services import Services
from tests.prediction_fakes import CLOB, GAMMA, KALSHI, POLY_ID, TICKER, kalshi_book, serve_kalshi, serve_polymarket
from tests.results import error_of

PREDICTION_TOOLS = {
    "search_prediction_markets",
    "get_prediction_market",
    "get_prediction_orderbook",
    "get_prediction_price_history",
    "compare_prediction_venues",
    "calculate_prediction_ev",
    "place_prediction_order",
    "cancel_prediction_order",
    "get_prediction_positions",
    "get_prediction_orders",
}
BOOK = kalshi_book(yes=[("0.4100", "500.00"), ("0.4300", "120.00")], no=[("0.5300", "300.00"), ("0.5500", "80.00")])


@pytest.fixture
async def stack(storage_settings: Settings) -> AsyncIterator[Services]:
    overrides = {
        "polymarket_gamma_url": GAMMA,
        "polymarket_clob_url": CLOB,
        "kalshi_api_url": KALSHI,
        "retry_max_attempts": 2,
        "retry_base_s": 0.01,
        "retry_max_backoff_s": 0.02,
        "breaker_fail_max": 3,
    }
    settings = Settings(_env_file=None, **(storage_settings.model_dump() | overrides))  # type: ignore[call-arg]
    services = await Services.start(settings)
    try:
        yield services
    finally:
        await services.close()


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


async def test_every_prediction_tool_end_to_end(stack: Services) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_polymarket(router)
        serve_kalshi(router, book=BOOK)
        async with Client(build_server(stack)) as client:
            listed = {t.name: t for t in (await client.list_tools()).tools}
            assert set(listed) >= PREDICTION_TOOLS
            for name in PREDICTION_TOOLS:
                hints = listed[name].annotations
                assert hints is not None and hints.destructive_hint is (
                    name in ("place_prediction_order", "cancel_prediction_order")
                )
                assert listed[name].output_schema is not None

            found = _ok(await client.call_tool("search_prediction_markets", {"query": "fed"}))
            assert {(m["venue"], m["id"]) for m in found["markets"]} == {("polymarket", POLY_ID), ("kalshi", TICKER)}
            assert all(m["fetched_at"] and m["rules"] is None for m in found["markets"]) and found["unavailable"] == []

            market = _ok(await client.call_tool("get_prediction_market", {"venue": "kalshi", "id": TICKER.lower()}))
            assert market["market"]["id"] == TICKER and "Federal Reserve" in market["market"]["rules"]
            assert market["market"]["category"] == "Economics" and "untrusted" not in market["market"]["rules"]
            assert "never acted on" in market["rules_note"]

            book = _ok(
                await client.call_tool("get_prediction_orderbook", {"venue": "kalshi", "id": TICKER, "depth": 1})
            )
            assert (book["best_bid"], book["best_ask"], book["spread"]) == ("0.43", "0.45", "0.02")
            assert book["implied_probability_mid"] == "0.44" and len(book["asks"]) == 1 and book["derived"]
            assert book["venue"] == "kalshi" and book["fetched_at"]

            history = _ok(
                await client.call_tool("get_prediction_price_history", {"venue": "polymarket", "id": POLY_ID})
            )
            assert history["count"] == 2 and history["points"][1]["p"] == "0.55" and history["venue"] == "polymarket"

            compared = _ok(
                await client.call_tool(
                    "compare_prediction_venues",
                    {
                        "polymarket_id": POLY_ID,
                        "kalshi_ticker": TICKER,
                        "side": "yes",
                        "contracts": 100,
                        "probability": "0.62",
                    },
                )
            )
            rows = {r["venue"]: r for r in compared["venues"]}
            assert rows["polymarket"]["fee"] == "0.9856" and rows["polymarket"]["all_in_cost"] == "0.569856"
            assert rows["kalshi"]["fee"] == "1.74" and rows["kalshi"]["all_in_cost"] == "0.4714"
            assert compared["best_venue"] == "kalshi" and rows["kalshi"]["ev_per_contract"] == "0.1486"
            assert D(rows["polymarket"]["kelly_fraction"]) == (D("0.62") - D("0.569856")) / (1 - D("0.569856"))

            ev = _ok(
                await client.call_tool(
                    "calculate_prediction_ev",
                    {
                        "price": "0.55",
                        "probability": "0.62",
                        "fee_model": "kalshi",
                        "contracts": 100,
                        "bankroll": 1000,
                        "kelly_fraction": "0.5",
                    },
                )
            )
            assert ev["fee_per_contract"] == "0.0174" and ev["cost"] == "0.5674" and ev["ev_per_contract"] == "0.0526"
            assert ev["kelly_full"] == "0.1215903837" and ev["kelly_used"] == "0.0607951919" and ev["stake"] == "60.79"
            assert ev["contracts_for_stake"] == "107"  # floor(1000 x 0.0608 / 0.5674)

            placed = _ok(
                await client.call_tool(
                    "place_prediction_order",
                    {"venue": "kalshi", "id": TICKER, "side": "yes", "count": 100, "limit_price": "0.46"},
                )
            )
            order = placed["order"]
            assert placed["venue"] == "kalshi" and placed["mode"] == "paper" and placed["book_fetched_at"]
            assert (order["status"], order["filled_count"], order["avg_fill_price"]) == ("open", "80", "0.45")
            assert placed["note"] and placed["checks"]
            again = _ok(
                await client.call_tool(
                    "place_prediction_order",
                    {
                        "venue": "kalshi",
                        "id": TICKER,
                        "side": "yes",
                        "count": 100,
                        "limit_price": "0.46",
                        "idempotency_key": placed["idempotency_key"],
                    },
                )
            )
            assert again["replayed"] is True and again["order"]["id"] == order["id"]
            _ok(
                await client.call_tool(
                    "place_prediction_order",
                    {"venue": "polymarket", "id": POLY_ID, "side": "no", "count": 10, "limit_price": "0.46"},
                )
            )

            open_orders = _ok(await client.call_tool("get_prediction_orders", {"status": "open"}))
            assert [o["id"] for o in open_orders["orders"]] == [order["id"]]
            canceled = _ok(await client.call_tool("cancel_prediction_order", {"order_id": order["id"]}))
            assert canceled["order"]["status"] == "canceled" and canceled["mode"] == "paper"

            positions = _ok(await client.call_tool("get_prediction_positions", {}))
            held = {(p["venue"], p["side"]): p for p in positions["positions"]}
            assert held[("kalshi", "yes")]["qty"] == "80" and held[("polymarket", "no")]["qty"] == "10"
            assert held[("polymarket", "no")]["avg_price"] == "0.46" and positions["unavailable"] == []


async def test_bad_input_is_refused_before_any_venue_is_asked(stack: Services) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_polymarket(router)
        serve_kalshi(router, book=BOOK)
        async with Client(build_server(stack)) as client:
            for name, args, argument in [
                ("calculate_prediction_ev", {"price": "0.5", "probability": "1.2"}, "probability"),
                ("calculate_prediction_ev", {"price": "1", "probability": "0.5"}, "price"),
                ("calculate_prediction_ev", {"price": "0", "probability": "0.5"}, "price"),
                (
                    "calculate_prediction_ev",
                    {"price": "0.5", "probability": "0.6", "fee_model": "polymarket"},
                    "fee_rate",
                ),
                ("get_prediction_market", {"venue": "betfair", "id": "x"}, "venue"),
                ("get_prediction_market", {"venue": "kalshi", "id": "has space"}, "id"),
                ("get_prediction_market", {"venue": "polymarket", "id": "../etc/passwd"}, "id"),
                ("get_prediction_orderbook", {"venue": "kalshi", "id": TICKER, "depth": 0}, "depth"),
                (
                    "place_prediction_order",
                    {"venue": "kalshi", "id": TICKER, "side": "yes", "count": 0, "limit_price": "0.5"},
                    "count",
                ),
                (
                    "place_prediction_order",
                    {"venue": "kalshi", "id": TICKER, "side": "yes", "count": 1, "limit_price": "1.5"},
                    "limit_price",
                ),
                (
                    "get_prediction_price_history",
                    {"venue": "kalshi", "id": TICKER, "start": "2026-02-01", "end": "2026-01-01"},
                    "start",
                ),
                ("compare_prediction_venues", {"polymarket_id": "Bad Slug", "kalshi_ticker": TICKER}, "polymarket_id"),
            ]:
                error = error_of(await client.call_tool(name, args))
                assert error["code"] == "VALIDATION_ERROR", (name, args, error)
                assert argument in error["context"]["argument"], (name, args, error)
            assert len(router.calls) == 0
            router.get(f"{KALSHI}/markets/KXNOPE-26").mock(return_value=httpx.Response(404, json={"error": {}}))
            missing = error_of(await client.call_tool("get_prediction_market", {"venue": "kalshi", "id": "KXNOPE-26"}))
            assert missing["code"] == "NOT_FOUND" and len(router.calls) == 1
            unknown = error_of(await client.call_tool("cancel_prediction_order", {"order_id": "nope"}))
            assert unknown["code"] == "NOT_FOUND"


async def test_a_venue_down_is_service_unavailable_while_the_other_is_served(stack: Services) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router, book=BOOK)
        router.route(host="gamma.test").mock(return_value=httpx.Response(503))
        router.route(host="clob.test").mock(side_effect=httpx.ConnectError("down"))
        async with Client(build_server(stack)) as client:
            down = error_of(await client.call_tool("get_prediction_market", {"venue": "polymarket", "id": POLY_ID}))
            assert down["code"] == "SERVICE_UNAVAILABLE" and down["retry_after_s"] > 0
            assert down["context"]["service"] == "polymarket-gamma" and down["retryable"] is True
            found = _ok(await client.call_tool("search_prediction_markets", {"venue": "all"}))
            assert [m["venue"] for m in found["markets"]] == ["kalshi"]
            [gone] = found["unavailable"]
            assert gone["venue"] == "polymarket" and gone["code"] == "SERVICE_UNAVAILABLE" and gone["retry_after_s"]
            compared = _ok(
                await client.call_tool("compare_prediction_venues", {"polymarket_id": POLY_ID, "kalshi_ticker": TICKER})
            )
            rows = {r["venue"]: r for r in compared["venues"]}
            assert rows["polymarket"]["error"]["code"] == "SERVICE_UNAVAILABLE" and rows["kalshi"]["all_in_cost"]
            assert compared["best_venue"] == "kalshi"
            kalshi = _ok(await client.call_tool("get_prediction_orderbook", {"venue": "kalshi", "id": TICKER}))
            assert kalshi["best_ask"] == "0.45"


async def test_live_orders_are_refused_without_the_gate_and_reads_cannot_trade(stack: Services) -> None:
    order = {"venue": "kalshi", "id": TICKER, "side": "yes", "count": 1, "limit_price": "0.45", "mode": "live"}
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router, book=BOOK)
        async with Client(build_server(stack)) as client:
            gate = error_of(await client.call_tool("place_prediction_order", order))
            poly = error_of(
                await client.call_tool("place_prediction_order", order | {"venue": "polymarket", "id": POLY_ID})
            )
        reader = Client(NtMCPServer(Guard(stack, Principal("reader", frozenset({"read"}))), all_tools()))
        async with reader as client:
            forbidden = error_of(await client.call_tool("place_prediction_order", order | {"mode": "paper"}))
        assert len(router.calls) == 0
    assert gate["code"] == "LIVE_GATE_CLOSED" and "NT_TRADING_MODE=live" in gate["message"]
    assert poly["code"] == "LIVE_NOT_SUPPORTED" and forbidden["code"] == "FORBIDDEN"
