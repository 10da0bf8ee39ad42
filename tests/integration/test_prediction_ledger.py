"""The paper prediction ledger on SQLite and PostgreSQL: fills against fake venue books by depth,
positions, fees, settlement, idempotency and limits under concurrency, and the live gate."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import sqlalchemy as sa

from nt_mcp.config import Settings
from nt_mcp.errors import BusinessLogicError, ServiceUnavailableError, TradingError, ValidationError
from nt_mcp.infra.schema import prediction_fills, prediction_orders
from nt_mcp.services.prediction_ledger import OrderParams
from nt_mcp.tools.services import Services
from tests.prediction_fakes import (
    CLOB,
    KALSHI,
    NO_TOKEN,
    POLY_ID,
    TICKER,
    clob_book,
    kalshi_book,
    kalshi_market,
    serve_kalshi,
    serve_polymarket,
)
from tests.prediction_fakes import GAMMA as GAMMA_URL

KEY_FILE = Path(__file__).resolve().parents[1] / "data" / "kalshi_test_only_rsa.pem"
VENUE_HOSTS = {
    "polymarket_gamma_url": GAMMA_URL,
    "polymarket_clob_url": CLOB,
    "kalshi_api_url": KALSHI,
    "retry_max_attempts": 2,
    "retry_base_s": 0.01,
    "retry_max_backoff_s": 0.02,
    "breaker_fail_max": 3,
    "polymarket_requests_per_s": 100,
    "kalshi_requests_per_s": 100,
}
# Kalshi book of the tests: YES bids 0.41 x 500, 0.43 x 120; NO bids 0.53 x 300, 0.55 x 80
# -> YES asks 0.45 x 80, 0.47 x 300 (1 - NO bids); NO asks 0.57 x 120, 0.59 x 500.
BOOK = kalshi_book(yes=[("0.4100", "500.00"), ("0.4300", "120.00")], no=[("0.5300", "300.00"), ("0.5500", "80.00")])


async def _start(storage_settings: Settings, **overrides: Any) -> Services:
    settings = Settings(_env_file=None, **(storage_settings.model_dump() | VENUE_HOSTS | overrides))  # type: ignore[call-arg]
    return await Services.start(settings)


@pytest.fixture
async def stack(storage_settings: Settings) -> AsyncIterator[Services]:
    services = await _start(storage_settings)
    try:
        yield services
    finally:
        await services.close()


def _kalshi(count: str, price: str, **extra: Any) -> OrderParams:
    values: dict[str, Any] = {
        "venue": "kalshi",
        "market_id": TICKER,
        "side": "yes",
        "action": "buy",
        "count": D(count),
        "limit_price": D(price),
    } | extra
    return OrderParams(**values)


async def _rows(services: Services, table: sa.Table) -> list[Any]:
    async with services.db.connect() as conn:
        return list((await conn.execute(sa.select(table))).mappings().all())


async def test_a_buy_fills_by_depth_rests_and_fills_on_a_later_book(stack: Services) -> None:
    ledger = stack.prediction
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router, book=BOOK)
        placed = await ledger.place("alice", _kalshi("100", "0.46"), "k1")
        order = placed.order
        assert (order.status, order.filled_count, order.avg_fill_price) == ("open", D(80), D("0.45"))
        assert order.fees == D("1.39")  # ceil(0.07 x 80 x 0.45 x 0.55 = 1.386) to the cent
        assert [(f.count, f.price) for f in order.fills] == [(D(80), D("0.45"))]
        assert placed.book is not None and order.fills[0].book_fetched_at == placed.book.fetched_at
        # a later book offers YES at 0.46 (a NO bid at 0.54): the resting 20 fill on the next read
        later = kalshi_book(yes=[("0.4300", "120.00")], no=[("0.5300", "300.00"), ("0.5400", "50.00")])
        router.get(f"{KALSHI}/markets/{TICKER}/orderbook").mock(return_value=httpx.Response(200, json=later))
        orders, down = await ledger.orders("alice", "all", 10, None)
        positions, _ = await ledger.positions("alice", include_closed=False)
    assert down == [] and orders[0].status == "filled" and orders[0].filled_count == 100
    assert orders[0].fees == D("1.74")  # 1.39 + ceil(0.07 x 20 x 0.46 x 0.54 = 0.34776)
    assert [(f.count, f.price) for f in orders[0].fills] == [(D(80), D("0.45")), (D(20), D("0.46"))]
    [position] = positions
    assert (position.venue, position.market_id, position.side, position.qty) == ("kalshi", TICKER, "yes", D(100))
    assert position.avg_price == D("0.452") and position.realized_pnl == D("-1.74")
    assert position.mark_price == D("0.43") and position.unrealized_pnl == D(100) * (D("0.43") - D("0.452"))
    assert position.title and position.mark_source and "kalshi" in position.mark_source


async def test_ioc_cancels_what_the_book_cannot_fill(stack: Services) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router, book=BOOK)
        order = (await stack.prediction.place("alice", _kalshi("500", "0.47", time_in_force="ioc"), None)).order
    assert order.status == "canceled" and order.filled_count == 380  # 80 @ 0.45 + 300 @ 0.47
    assert order.avg_fill_price == (80 * D("0.45") + 300 * D("0.47")) / 380


async def test_polymarket_no_side_uses_the_no_token_book_and_the_fee_schedule(stack: Services) -> None:
    no_book = clob_book(NO_TOKEN, [("0.44", "150")], [("0.46", "100"), ("0.47", "200")])
    with respx.mock(assert_all_called=False) as router:
        serve_polymarket(router, no_book=no_book)
        params = OrderParams("polymarket", POLY_ID, "no", "buy", D(150), D("0.47"))
        order = (await stack.prediction.place("bob", params, None)).order
    assert order.status == "filled" and order.filled_count == 150
    assert order.fees == D("1.49180")  # 0.04 x (100 x .46 x .54 + 50 x .47 x .53) = 1.4918


async def test_sell_realises_pnl_and_no_short_selling(stack: Services) -> None:
    ledger = stack.prediction
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router, book=BOOK)
        await ledger.place("carol", _kalshi("50", "0.45"), None)  # 50 @ 0.45, fee ceil(0.86625) = 0.87
        with pytest.raises(BusinessLogicError) as short:
            await ledger.place("carol", _kalshi("60", "0.40", action="sell"), None)
        assert short.value.code == "INSUFFICIENT_POSITION"
        sold = (await ledger.place("carol", _kalshi("50", "0.40", action="sell"), None)).order
        positions, _ = await ledger.positions("carol", include_closed=True)
    assert sold.status == "filled" and sold.avg_fill_price == D("0.43")  # the best YES bid
    assert sold.fees == D("0.86")  # ceil(0.07 x 50 x 0.43 x 0.57 = 0.85785)
    [position] = positions
    assert position.status == "closed" and position.qty == 0
    assert position.realized_pnl == 50 * (D("0.43") - D("0.45")) - D("0.87") - D("0.86")


async def test_positions_settle_when_the_resolution_is_final(stack: Services) -> None:
    ledger = stack.prediction
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router, book=BOOK)
        await ledger.place("dave", _kalshi("10", "0.45"), None)  # 10 YES @ 0.45, fee ceil(0.17325) = 0.18
        await ledger.place("dave", _kalshi("10", "0.57", side="no"), None)  # 10 NO @ 0.57, fee 0.18
        await stack.cache.delete(f"prediction:kalshi:market:{TICKER}")
        router.get(f"{KALSHI}/markets/{TICKER}").mock(
            return_value=httpx.Response(200, json={"market": kalshi_market(status="determined", result="yes")})
        )
        open_positions, _ = await ledger.positions("dave", include_closed=True)
        assert {p.status for p in open_positions} == {"open"}  # determined is not final: no settlement yet
        await stack.cache.delete(f"prediction:kalshi:market:{TICKER}")
        router.get(f"{KALSHI}/markets/{TICKER}").mock(
            return_value=httpx.Response(200, json={"market": kalshi_market(status="finalized", result="yes")})
        )
        settled, _ = await ledger.positions("dave", include_closed=True)
    by_side = {p.side: p for p in settled}
    assert {p.status for p in settled} == {"settled"} and by_side["yes"].resolution == "yes"
    assert by_side["yes"].realized_pnl == 10 * (1 - D("0.45")) - D("0.18")
    assert by_side["no"].realized_pnl == -10 * D("0.57") - D("0.18")


async def test_one_key_is_one_order_and_a_reused_key_for_another_order_is_refused(stack: Services) -> None:
    ledger = stack.prediction
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router, book=BOOK)
        first = await ledger.place("erin", _kalshi("10", "0.45"), "same")
        again = await ledger.place("erin", _kalshi("10", "0.45"), "same")
        with pytest.raises(ValidationError) as reused:
            await ledger.place("erin", _kalshi("11", "0.45"), "same")
        other_principal = await ledger.place("frank", _kalshi("10", "0.45"), "same")
    assert again.replayed and again.order.id == first.order.id and not first.replayed
    assert reused.value.argument == "idempotency_key"
    assert other_principal.order.id != first.order.id  # keys are per principal
    assert len(await _rows(stack, prediction_orders)) == 2 and len(await _rows(stack, prediction_fills)) == 2


async def test_overlapping_calls_with_one_key_make_one_order(stack: Services) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router, book=BOOK)
        results = await asyncio.gather(
            *(stack.prediction.place("gina", _kalshi("30", "0.45"), "burst") for _ in range(8))
        )
    assert len({r.order.id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert all(r.order.status == "filled" and r.order.filled_count == 30 for r in results)
    assert len(await _rows(stack, prediction_orders)) == 1
    fills = await _rows(stack, prediction_fills)
    assert sum(D(str(f["count"])) for f in fills) == 30


async def test_overlapping_calls_with_one_key_replay_even_at_the_exposure_limit(storage_settings: Settings) -> None:
    services = await _start(storage_settings, prediction_max_market_exposure=D(25))
    try:
        with respx.mock(assert_all_called=False) as router:
            serve_kalshi(router, book=BOOK)
            # 50 @ 0.45 = 23.37 with the fee fits once; the same key again must replay, not hit the limit
            results = await asyncio.gather(
                *(services.prediction.place("pat", _kalshi("50", "0.45"), "one") for _ in range(5))
            )
        assert len({r.order.id for r in results}) == 1 and sum(not r.replayed for r in results) == 1
    finally:
        await services.close()


async def test_concurrent_orders_cannot_together_pass_the_exposure_limit(storage_settings: Settings) -> None:
    services = await _start(storage_settings, prediction_max_market_exposure=D(100))
    try:
        with respx.mock(assert_all_called=False) as router:
            serve_kalshi(router, book=BOOK)
            # each: 50 YES @ 0.45 = 22.50 + fee 0.87 = 23.37; held cost grows 22.50 per filled order
            results = await asyncio.gather(
                *(services.prediction.place("hank", _kalshi("50", "0.45"), None) for _ in range(6)),
                return_exceptions=True,
            )
        refused = [r for r in results if isinstance(r, TradingError)]
        assert len(refused) == 2 and {r.code for r in refused} == {"PREDICTION_MAX_EXPOSURE"}
        placed = [r for r in results if not isinstance(r, BaseException)]
        assert len(placed) == 4  # 3 x 22.50 + 23.37 = 90.87 <= 100; a fifth would make 113.37
        positions, _ = await services.prediction.positions("hank", include_closed=False)
        assert positions[0].qty * positions[0].avg_price <= 100
    finally:
        await services.close()


async def test_limits_per_order(storage_settings: Settings) -> None:
    services = await _start(storage_settings, prediction_max_contracts=D(100), prediction_max_order_cost=D(20))
    try:
        with respx.mock(assert_all_called=False) as router:
            serve_kalshi(router, book=BOOK)
            for params, code in (
                (_kalshi("101", "0.10"), "PREDICTION_MAX_CONTRACTS"),
                (_kalshi("50", "0.45"), "PREDICTION_MAX_ORDER_COST"),
            ):
                with pytest.raises(BusinessLogicError) as refused:
                    await services.prediction.place("ivy", params, None)
                assert refused.value.code == code
            with pytest.raises(ValidationError) as off_tick:
                await services.prediction.place("ivy", _kalshi("10", "0.455"), None)
            assert off_tick.value.argument == "limit_price"
        assert await _rows(services, prediction_orders) == []
    finally:
        await services.close()


async def test_cancel_a_resting_paper_order(stack: Services) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router, book=BOOK)
        order = (await stack.prediction.place("jack", _kalshi("10", "0.30"), None)).order
        assert order.status == "open" and order.filled_count == 0 and order.error
        canceled = await stack.prediction.cancel("jack", order.id)
        with pytest.raises(BusinessLogicError) as twice:
            await stack.prediction.cancel("jack", order.id)
    assert canceled.status == "canceled" and twice.value.code == "ORDER_NOT_CANCELABLE"


async def test_a_venue_down_during_a_paper_order_fails_it_and_the_same_key_retries(stack: Services) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router, book=BOOK)
        book = router.get(f"{KALSHI}/markets/{TICKER}/orderbook").mock(return_value=httpx.Response(502))
        with pytest.raises(ServiceUnavailableError) as down:
            await stack.prediction.place("kim", _kalshi("10", "0.45"), "retry-me")
        assert down.value.retry_after_s
        [row] = await _rows(stack, prediction_orders)
        assert row["status"] == "failed"
        book.mock(return_value=httpx.Response(200, json=BOOK))
        again = await stack.prediction.place("kim", _kalshi("10", "0.45"), "retry-me")
    assert again.order.status == "filled" and again.order.id == row["id"]


async def test_positions_are_still_served_while_the_venue_is_down(stack: Services) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router, book=BOOK)
        await stack.prediction.place("lee", _kalshi("10", "0.45"), None)
        await stack.cache.delete(f"prediction:kalshi:market:{TICKER}")
        router.get(f"{KALSHI}/markets/{TICKER}").mock(return_value=httpx.Response(503))
        positions, down = await stack.prediction.positions("lee", include_closed=False)
    assert [u.venue for u in down] == ["kalshi"] and down[0].code == "SERVICE_UNAVAILABLE"
    [position] = positions
    assert position.mark_price == D("0.43") and position.mark_source and "snapshot" in position.mark_source


async def test_live_orders_need_the_gate_and_refuse_polymarket_without_any_request(stack: Services) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router, book=BOOK)
        for params, code in (
            (_kalshi("1", "0.45", mode="live"), "LIVE_GATE_CLOSED"),
            (OrderParams("polymarket", POLY_ID, "yes", "buy", D(1), D("0.5"), mode="live"), "LIVE_NOT_SUPPORTED"),
        ):
            with pytest.raises(BusinessLogicError) as refused:
                await stack.prediction.place("mia", params, None)
            assert refused.value.code == code
        assert len(router.calls) == 0
    assert await _rows(stack, prediction_orders) == []


async def test_live_kalshi_order_is_signed_sent_once_and_resolved_by_lookup(storage_settings: Settings) -> None:
    services = await _start(
        storage_settings,
        trading_mode="live",
        live_trading_acknowledged=True,
        kalshi_key_id="test-key-id",
        kalshi_private_key_file=KEY_FILE,
    )
    try:
        with respx.mock(assert_all_called=False) as router:
            serve_kalshi(router, book=BOOK)
            lookup = router.get(f"{KALSHI}/portfolio/orders").mock(
                return_value=httpx.Response(200, json={"orders": [], "cursor": ""})
            )
            post = router.post(f"{KALSHI}/portfolio/events/orders").mock(return_value=httpx.Response(500))
            with pytest.raises(TradingError) as unknown:
                await services.prediction.place("ned", _kalshi("10", "0.55", side="no", mode="live"), "live-1")
            assert unknown.value.retryable and post.call_count == 1  # an order is never retried blindly
            sent = json.loads(post.calls.last.request.content)
            assert sent == {
                "ticker": TICKER,
                "client_order_id": sent["client_order_id"],
                "side": "ask",
                "count": "10.00",
                "price": "0.4500",
                "time_in_force": "good_till_canceled",
                "self_trade_prevention_type": "taker_at_cross",
            }
            headers = post.calls.last.request.headers
            assert headers["KALSHI-ACCESS-KEY"] == "test-key-id" and headers["KALSHI-ACCESS-SIGNATURE"]
            # the retry with the same key looks the order up first: Kalshi has it now, so it is not resent
            lookup.mock(
                return_value=httpx.Response(
                    200,
                    json={
                        "orders": [
                            {
                                "order_id": "ko-1",
                                "client_order_id": sent["client_order_id"],
                                "status": "resting",
                                "fill_count_fp": "4.00",
                                "remaining_count_fp": "6.00",
                            }
                        ]
                    },
                )
            )
            found = await services.prediction.place("ned", _kalshi("10", "0.55", side="no", mode="live"), "live-1")
            assert post.call_count == 1
            assert (found.order.mode, found.order.venue_order_id, found.order.status) == ("live", "ko-1", "open")
            assert found.order.filled_count == 4
            router.delete(f"{KALSHI}/portfolio/events/orders/ko-1").mock(
                return_value=httpx.Response(
                    200,
                    json={
                        "order_id": "ko-1",
                        "client_order_id": sent["client_order_id"],
                        "status": "canceled",
                        "fill_count_fp": "4.00",
                    },
                )
            )
            canceled = await services.prediction.cancel("ned", found.order.id)
        assert canceled.status == "canceled" and canceled.mode == "live"
    finally:
        await services.close()


async def test_live_order_accepted_at_once(storage_settings: Settings) -> None:
    services = await _start(
        storage_settings,
        trading_mode="live",
        live_trading_acknowledged=True,
        kalshi_key_id="test-key-id",
        kalshi_private_key_file=KEY_FILE,
    )
    try:
        with respx.mock(assert_all_called=False) as router:
            serve_kalshi(router, book=BOOK)
            router.get(f"{KALSHI}/portfolio/orders").mock(return_value=httpx.Response(200, json={"orders": []}))
            router.post(f"{KALSHI}/portfolio/events/orders").mock(
                return_value=httpx.Response(
                    201,
                    json={
                        "order_id": "ko-9",
                        "client_order_id": "x",
                        "fill_count": "5.00",
                        "remaining_count": "0.00",
                        "average_fill_price": "0.4500",
                        "average_fee_paid": "0.0200",
                        "ts_ms": 1796083200123,
                    },
                )
            )
            placed = await services.prediction.place(
                "olga", _kalshi("5", "0.45", mode="live", time_in_force="ioc"), None
            )
        order = placed.order
        assert (order.status, order.filled_count, order.avg_fill_price, order.fees) == (
            "filled",
            5,
            D("0.45"),
            D("0.1"),
        )
    finally:
        await services.close()


async def test_live_account_reads_balance_from_integer_cents(storage_settings: Settings) -> None:
    from mcp import Client

    from nt_mcp.server.app import build_server

    services = await _start(storage_settings, kalshi_key_id="test-key-id", kalshi_private_key_file=KEY_FILE)
    try:
        with respx.mock(assert_all_called=False) as router:
            balance = router.get(f"{KALSHI}/portfolio/balance").mock(
                return_value=httpx.Response(200, json={"balance": 123456, "portfolio_value": 7890, "updated_ts": 1})
            )
            router.get(f"{KALSHI}/portfolio/positions").mock(
                return_value=httpx.Response(
                    200,
                    json={
                        "market_positions": [
                            {"ticker": TICKER, "position_fp": "10.00", "market_exposure_dollars": "4.5000"}
                        ]
                    },
                )
            )
            async with Client(build_server(services)) as client:
                result = await client.call_tool("get_prediction_positions", {"mode": "live"})
            assert balance.calls.last.request.headers["KALSHI-ACCESS-KEY"] == "test-key-id"
        body = result.structured_content
        assert body is not None and body["mode"] == "live"
        assert body["live_balance"] == {"balance": "1234.56", "portfolio_value": "78.90"}
        assert body["live_positions"] == [
            {"ticker": TICKER, "position_fp": "10.00", "market_exposure_dollars": "4.5000"}
        ]
    finally:
        await services.close()


async def test_two_ledgers_on_one_database_cannot_together_pass_the_exposure_limit(
    storage_settings: Settings,
) -> None:
    """Two `Services` (as two replicas: each its own in-process locks) on one database: the
    exposure check holds across them only through the database's lock."""
    first = await _start(storage_settings, prediction_max_market_exposure=D(100))
    second = await _start(storage_settings, prediction_max_market_exposure=D(100))
    try:
        with respx.mock(assert_all_called=False) as router:
            serve_kalshi(router, book=BOOK)
            results = await asyncio.gather(
                *(s.prediction.place("ivy", _kalshi("50", "0.45"), None) for s in (first, second) * 6),
                return_exceptions=True,
            )
        refused = [r for r in results if isinstance(r, TradingError)]
        placed = [r for r in results if not isinstance(r, BaseException)]
        assert len(placed) == 4 and len(refused) == 8, results
        assert {r.code for r in refused} == {"PREDICTION_MAX_EXPOSURE"}
        positions, _ = await second.prediction.positions("ivy", include_closed=False)
        assert positions[0].qty == 200
    finally:
        await first.close()
        await second.close()
