"""Alpaca through alpaca-py against an HTTP-level fake, on both storage backends: never twice
(timeout after acceptance, 5xx after acceptance, duplicate client_order_id, same idempotency key),
APIError mapping, validation with zero order requests, and the live/paper endpoint choice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal as D
from typing import Any

import pytest
import requests_mock
import sqlalchemy as sa

from nt_mcp.adapters.brokers.alpaca import AlpacaBroker, build_trading_client
from nt_mcp.adapters.brokers.base import client_order_id_for
from nt_mcp.config import Settings
from nt_mcp.errors import (
    BusinessLogicError,
    ExternalAPIError,
    NotFoundError,
    RateLimitError,
    ValidationError,
)
from nt_mcp.infra.schema import orders
from nt_mcp.services.order_router import OrderParams
from nt_mcp.tools.services import Services
from tests.alpaca_fake import LIVE_TRADING, AlpacaFake, read_timeout, server_error
from tests.conftest import make_settings

ME = "alice"


@pytest.fixture
def fake() -> Iterator[AlpacaFake]:
    with requests_mock.Mocker() as mocker:
        yield AlpacaFake(mocker)


def alpaca_settings(base: Settings, **overrides: Any) -> Settings:
    values = {
        "broker": "alpaca",
        "alpaca_api_key": "PKTEST0000000000",
        "alpaca_secret_key": "secret0000000000000000000000000000000000",
        "risk_max_order_notional": D(0),
        "risk_max_position_weight": D(0),
    } | overrides
    return base.model_copy(update={k: _secret(k, v) for k, v in values.items()})


def _secret(name: str, value: Any) -> Any:
    from pydantic import SecretStr

    return SecretStr(value) if name.endswith("_key") else value


@pytest.fixture
async def alpaca(storage_settings: Settings, fake: AlpacaFake) -> AsyncIterator[Services]:
    services = await Services.start(alpaca_settings(storage_settings))
    try:
        yield services
    finally:
        await services.close()


def _buy(**fields: Any) -> OrderParams:
    return OrderParams(**{"symbol": "AAPL", "side": "buy", "qty": D(5)} | fields)


async def _journal(services: Services) -> list[dict[str, Any]]:
    async with services.db.connect() as conn:
        return [dict(r) for r in (await conn.execute(sa.select(orders))).mappings().all()]


async def test_order_is_journaled_sent_once_and_replayed_by_key(alpaca: Services, fake: AlpacaFake) -> None:
    placed = await alpaca.orders.place(ME, _buy(type="limit", limit_price=D("180.25")), "key-1")
    assert placed.order.status == "accepted" and placed.order.limit_price == D("180.25")
    assert placed.order.client_order_id == client_order_id_for(ME, "key-1")
    assert fake.last_body["client_order_id"] == placed.order.client_order_id
    again = await alpaca.orders.place(ME, _buy(type="limit", limit_price=D("180.25")), "key-1")
    assert again.replayed and again.order.id == placed.order.id
    assert fake.posts() == 1 and len(fake.orders) == 1
    (row,) = await _journal(alpaca)
    assert row["broker_order_id"] == placed.order.id and row["status"] == "accepted"
    assert row["broker"] == "alpaca" and row["mode"] == "paper"


async def test_accepted_then_response_timed_out_is_found_not_resent(alpaca: Services, fake: AlpacaFake) -> None:
    fake.fail_next_post = read_timeout
    placed = await alpaca.orders.place(ME, _buy(), "key-timeout")
    assert placed.order.id in fake.orders
    assert fake.posts() == 1 and len(fake.orders) == 1  # exactly one order exists
    again = await alpaca.orders.place(ME, _buy(), "key-timeout")
    assert again.order.id == placed.order.id and fake.posts() == 1
    (row,) = await _journal(alpaca)
    assert row["status"] == "accepted" and row["broker_order_id"] == placed.order.id


async def test_accepted_then_500_is_found_not_resent(alpaca: Services, fake: AlpacaFake) -> None:
    fake.fail_next_post = server_error
    placed = await alpaca.orders.place(ME, _buy(), "key-500")
    assert fake.posts() == 1 and list(fake.orders) == [placed.order.id]


async def test_not_accepted_503_says_retry_with_the_same_key(alpaca: Services, fake: AlpacaFake) -> None:
    fake.accept_posts = False
    with pytest.raises(ExternalAPIError) as caught:
        await alpaca.orders.place(ME, _buy(), "key-503")
    assert caught.value.retryable and "same idempotency_key" in caught.value.message
    assert fake.orders == {}
    (row,) = await _journal(alpaca)
    assert row["status"] == "submit_failed"
    fake.accept_posts = True
    placed = await alpaca.orders.place(ME, _buy(), "key-503")  # the retry looks up first, then sends
    assert not placed.replayed and len(fake.orders) == 1 and fake.posts() == 2


async def test_duplicate_client_order_id_resolves_to_the_existing_order(alpaca: Services, fake: AlpacaFake) -> None:
    client_id = client_order_id_for(ME, "made-elsewhere")
    existing = fake._order_json({"symbol": "AAPL", "side": "buy", "type": "market", "time_in_force": "day",
                                 "qty": 5, "client_order_id": client_id})  # fmt: skip
    fake.orders[existing["id"]] = existing  # Alpaca has it; our journal does not
    placed = await alpaca.orders.place(ME, _buy(), "made-elsewhere")
    assert placed.order.id == existing["id"] and len(fake.orders) == 1


async def test_reusing_a_key_for_another_order_is_refused(alpaca: Services, fake: AlpacaFake) -> None:
    await alpaca.orders.place(ME, _buy(), "k")
    with pytest.raises(ValidationError) as caught:
        await alpaca.orders.place(ME, _buy(symbol="MSFT"), "k")
    assert caught.value.argument == "idempotency_key" and fake.posts() == 1


@pytest.mark.parametrize(
    ("fields", "argument"),
    [
        ({"qty": D(0)}, "qty"),
        ({"qty": D(-3)}, "qty"),
        ({"qty": float("nan")}, "qty"),
        ({"type": "limit", "limit_price": float("inf")}, "limit_price"),
        ({"type": "limit"}, "limit_price"),
        ({"symbol": "not a symbol!"}, "symbol"),
        ({"symbol": "ZZZZZ"}, "symbol"),  # well-formed, but Alpaca has no such asset
    ],
)
async def test_bad_orders_are_refused_before_any_order_request(
    alpaca: Services, fake: AlpacaFake, fields: dict[str, Any], argument: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        await alpaca.orders.place(ME, _buy(**fields), None)
    assert caught.value.argument == argument
    assert fake.posts() == 0 and fake.orders == {} and await _journal(alpaca) == []
    if argument != "symbol" or fields["symbol"] != "ZZZZZ":
        assert fake.trading_requests() == 0


async def test_market_closed_blocks_market_orders_at_alpaca(alpaca: Services, fake: AlpacaFake) -> None:
    fake.market_open = False
    with pytest.raises(BusinessLogicError) as caught:
        await alpaca.orders.place(ME, _buy(), None)
    assert caught.value.code == "MARKET_CLOSED" and fake.posts() == 0
    placed = await alpaca.orders.place(ME, _buy(type="limit", limit_price=D(180)), None)
    assert placed.order.type == "limit"


async def test_bracket_and_trailing_stop_use_alpacas_request_models(alpaca: Services, fake: AlpacaFake) -> None:
    await alpaca.orders.place(ME, _buy(take_profit_limit_price=D(200), stop_loss_stop_price=D(170)), None)
    assert fake.last_body["order_class"] == "bracket"
    assert fake.last_body["take_profit"] == {"limit_price": 200.0}
    assert fake.last_body["stop_loss"] == {"stop_price": 170.0}
    await alpaca.orders.place(ME, _buy(side="sell", type="trailing_stop", trail_percent=D(2)), None)
    assert fake.last_body["type"] == "trailing_stop" and fake.last_body["trail_percent"] == 2.0


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "code"),
    [
        (422, {"code": 40010001, "message": "qty must be > 0"}, {}, ValidationError, "VALIDATION_ERROR"),
        (403, {"code": 40310000, "message": "insufficient buying power"}, {}, BusinessLogicError, "BROKER_REJECTED"),
        (
            429,
            {"code": 42910000, "message": "rate limit exceeded"},
            {"Retry-After": "7"},
            RateLimitError,
            "RATE_LIMITED",
        ),
        (500, {"code": 50010000, "message": "internal"}, {}, ExternalAPIError, "EXTERNAL_API_ERROR"),
        (404, {"code": 40410000, "message": "order not found"}, {}, NotFoundError, "NOT_FOUND"),
    ],
)
async def test_api_errors_become_typed_errors(
    fake: AlpacaFake, status: int, body: dict[str, Any], headers: dict[str, str], error: type, code: str
) -> None:
    fake.mocker.get(f"{LIVE_TRADING}/account", status_code=status, json=body, headers=headers)
    broker = AlpacaBroker(build_trading_client("k", "s", live=True), market_data=None)  # type: ignore[arg-type]
    with pytest.raises(error) as caught:
        await broker.get_account(ME)
    assert caught.value.code == code
    assert sum(1 for r in fake.mocker.request_history if r.url.startswith(LIVE_TRADING)) == 1  # no retries
    if status == 429:
        assert caught.value.retry_after_s == 7 and caught.value.retryable
    if status == 500:
        assert caught.value.retryable
    if status in (403, 422):
        assert body["message"] in caught.value.message


def test_paper_config_never_builds_a_live_client(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from nt_mcp.adapters.brokers import factory

    built: list[bool] = []
    real = factory.build_trading_client

    def spy(key: str, secret: str, *, live: bool, url_override: str | None = None) -> Any:
        built.append(live)
        return real(key, secret, live=live, url_override=url_override)

    monkeypatch.setattr(factory, "build_trading_client", spy)
    for mode, ack in [("paper", False), ("live", False), ("LIVE-ish", True), ("live", True)]:
        settings = alpaca_settings(make_settings(tmp_path), trading_mode=mode, live_trading_acknowledged=ack)
        broker = factory.build_broker(settings, None, None, None)  # type: ignore[arg-type]
        assert broker.client._base_url == ("https://api.alpaca.markets" if settings.mode == "live" else  # type: ignore[attr-defined]
                                           "https://paper-api.alpaca.markets")  # fmt: skip
    assert built == [False, False, False, True]


async def test_twenty_concurrent_calls_with_one_key_post_once(alpaca: Services, fake: AlpacaFake) -> None:
    fake.post_delay_s = 0.3
    results = await asyncio.gather(*(alpaca.orders.place(ME, _buy(), "together") for _ in range(20)))
    assert fake.posts() == 1 and len(fake.orders) == 1
    assert sorted(r.replayed for r in results) == [False] + [True] * 19
    assert {r.order.id for r in results} == set(fake.orders)


async def test_the_daily_loss_halt_uses_alpacas_last_equity(alpaca: Services, fake: AlpacaFake) -> None:
    fake.equity, fake.last_equity = "94000", "100000"  # down 6% since yesterday's close
    account = await alpaca.broker.get_account(ME)
    assert account.day_start_equity == D(100_000) and account.day_pl == D(-6_000)
    assert "last_equity" in account.day_start_basis
    with pytest.raises(BusinessLogicError) as halted:
        await alpaca.orders.place(ME, _buy(), "after-the-drop")
    assert halted.value.code == "RISK_DAILY_LOSS_HALT" and fake.posts() == 0
