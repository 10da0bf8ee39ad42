"""Orders under concurrency, on both storage backends: one idempotency key sends once however many
calls overlap; a key reused for another request is refused; reservations of buying power and
shares cannot be raced."""

from __future__ import annotations

import asyncio
from decimal import Decimal as D
from typing import Any

import pytest
import sqlalchemy as sa

from nt_mcp.adapters.brokers.paper import PaperConfig
from nt_mcp.errors import BusinessLogicError, TradingError, ValidationError
from nt_mcp.infra.schema import fills, orders
from nt_mcp.services.order_router import OrderParams, Placed
from nt_mcp.tools.services import Services
from tests.fakes import CountingBroker, SetPrices, use_paper_prices

ME = "alice"


def _params(**fields: Any) -> OrderParams:
    return OrderParams(**{"symbol": "AAPL", "side": "buy", "qty": D(10)} | fields)


async def _count(services: Services, table: sa.Table) -> int:
    async with services.db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def _gather(calls: list[Any]) -> list[Placed | TradingError]:
    results = await asyncio.gather(*calls, return_exceptions=True)
    for result in results:
        if not isinstance(result, Placed | TradingError):
            raise result  # anything else is a bug
    return results  # type: ignore[return-value]


async def test_twenty_concurrent_calls_with_one_key_send_once(services: Services) -> None:
    counting: list[CountingBroker] = []

    def wrap(broker: Any) -> Any:
        counting.append(CountingBroker(broker, delay_s=0.05))  # a slow broker: the window is wide open
        return counting[0]

    use_paper_prices(services, SetPrices(AAPL="100"), wrap=wrap)
    results = await _gather([services.orders.place(ME, _params(), "same-key") for _ in range(20)])
    placed = [r for r in results if isinstance(r, Placed)]
    assert len(placed) == 20, [r for r in results if not isinstance(r, Placed)]
    assert counting[0].submits == 1  # exactly one broker submit
    assert sorted(p.replayed for p in placed) == [False] + [True] * 19
    assert {p.order.id for p in placed} == {placed[0].order.id}
    first = next(p for p in placed if not p.replayed)
    assert first.checks and first.order.status == "filled"
    assert await _count(services, orders) == 1 and await _count(services, fills) == 1


async def test_a_caller_that_waits_too_long_gets_a_retryable_error_not_a_second_send(services: Services) -> None:
    counting: list[CountingBroker] = []

    def wrap(broker: Any) -> Any:
        counting.append(CountingBroker(broker, delay_s=1.0))
        return counting[0]

    use_paper_prices(services, SetPrices(AAPL="100"), wrap=wrap)
    services.orders.wait_s = 0.2
    first = asyncio.create_task(services.orders.place(ME, _params(), "slow-key"))
    await asyncio.sleep(0.1)
    with pytest.raises(BusinessLogicError) as waiting:
        await services.orders.place(ME, _params(), "slow-key")
    assert waiting.value.code == "IDEMPOTENCY_KEY_IN_USE" and waiting.value.retryable
    assert waiting.value.retry_after_s is not None
    placed = await first
    again = await services.orders.place(ME, _params(), "slow-key")  # the retry the error asked for
    assert counting[0].submits == 1
    assert not placed.replayed and again.replayed and again.order.id == placed.order.id


@pytest.mark.parametrize(
    ("changed", "field"),
    [
        ({"qty": D(11)}, "qty"),
        ({"qty": None, "notional": D(1000)}, "qty"),
        ({"symbol": "MSFT"}, "symbol"),
        ({"side": "sell"}, "side"),
        ({"type": "limit", "limit_price": D(90)}, "type"),
        ({"time_in_force": "gtc"}, "time_in_force"),
    ],
)
async def test_a_key_reused_for_another_order_is_refused_open_or_settled(
    services: Services, changed: dict[str, Any], field: str
) -> None:
    use_paper_prices(services, SetPrices(AAPL="100", MSFT="50"))
    settled = await services.orders.place(ME, _params(), "filled-key")
    resting = await services.orders.place(ME, _params(type="limit", limit_price=D(50), qty=D(3)), "open-key")
    assert settled.order.status == "filled" and resting.order.status == "new"
    with pytest.raises(ValidationError) as reused:
        await services.orders.place(ME, _params(**changed), "filled-key")
    error = reused.value
    assert error.code == "IDEMPOTENCY_KEY_REUSED" and not error.retryable
    assert error.context == {"argument": "idempotency_key", "field": field}
    assert field in error.message and len(error.message) < 300
    with pytest.raises(ValidationError) as reused_open:  # the open order: a different qty is refused too
        await services.orders.place(ME, _params(type="limit", limit_price=D(50), qty=D(4)), "open-key")
    assert reused_open.value.code == "IDEMPOTENCY_KEY_REUSED" and reused_open.value.context["field"] == "qty"
    assert await _count(services, orders) == 2 and await _count(services, fills) == 1
    same = await services.orders.place(ME, _params(qty=D("10.0")), "filled-key")  # 10.0 is the same qty
    assert same.replayed and same.order.id == settled.order.id


async def test_concurrent_limit_buys_never_reserve_more_than_the_cash(services: Services) -> None:
    use_paper_prices(services, SetPrices(AAPL="100"))
    # 20 resting buys of 60 x 99 = 5,940 each: 16 fit in 100,000 (95,040), the 17th would not
    calls = [
        services.orders.place(ME, _params(qty=D(60), type="limit", limit_price=D(99)), f"buy-{i}") for i in range(20)
    ]
    results = await _gather(calls)
    accepted = [r for r in results if isinstance(r, Placed)]
    refused = [r for r in results if isinstance(r, TradingError)]
    assert len(accepted) == 16 and all(p.order.status == "new" for p in accepted)
    assert {e.code for e in refused} == {"INSUFFICIENT_BUYING_POWER"} and len(refused) == 4
    account = await services.broker.get_account(ME)
    reserved = sum((p.order.qty * p.order.limit_price for p in accepted), D(0))  # type: ignore[operator]
    assert reserved == D(95_040) <= account.cash == D(100_000)
    assert account.buying_power == account.cash - reserved


async def test_concurrent_sells_never_sell_shares_twice_when_shorting_is_off(services: Services) -> None:
    use_paper_prices(services, SetPrices(AAPL="100"), PaperConfig(slippage_bps=D(0), allow_short=False))
    await services.orders.place(ME, _params(qty=D(100)), "buy-100")
    calls = [
        services.orders.place(ME, _params(side="sell", type="limit", limit_price=D(150)), f"sell-{i}")
        for i in range(16)
    ]
    results = await _gather(calls)
    accepted = [r for r in results if isinstance(r, Placed)]
    refused = [r for r in results if isinstance(r, TradingError)]
    assert len(accepted) == 10 and {e.code for e in refused} == {"INSUFFICIENT_POSITION"}
    assert sum((p.order.qty for p in accepted), D(0)) == D(100)  # type: ignore[misc]


async def test_concurrent_short_sales_never_exceed_buying_power(services: Services) -> None:
    use_paper_prices(services, SetPrices(AAPL="100"))
    # each resting short sale of 100 at limit 101 needs 100 x max(101, 1.03 x 100) = 10,300: 9 fit
    calls = [
        services.orders.place(ME, _params(side="sell", qty=D(100), type="limit", limit_price=D(101)), f"short-{i}")
        for i in range(12)
    ]
    results = await _gather(calls)
    accepted = [r for r in results if isinstance(r, Placed)]
    assert len(accepted) == 9
    assert {r.code for r in results if isinstance(r, TradingError)} == {"INSUFFICIENT_BUYING_POWER"}
    assert (await services.broker.get_account(ME)).buying_power == D(100_000) - 9 * D(10_300)


async def test_close_position_keys_stand_for_the_close_request(services: Services) -> None:
    use_paper_prices(services, SetPrices(AAPL="100"))
    await services.orders.place(ME, _params(qty=D(8)), "open")
    with pytest.raises(ValidationError) as reused:
        await services.orders.close_position(ME, "AAPL", None, None, "open")  # a place_order key
    assert reused.value.code == "IDEMPOTENCY_KEY_REUSED" and reused.value.context["field"] == "tool"
    calls = [services.orders.close_position(ME, "AAPL", None, D(50), "half") for _ in range(5)]
    closes = await _gather(calls)
    assert all(isinstance(c, Placed) for c in closes)
    assert sorted(c.replayed for c in closes) == [False] + [True] * 4  # type: ignore[union-attr]
    (position,) = await services.broker.get_positions(ME)
    assert position.qty == D(4)  # closed half once, not five times
    with pytest.raises(ValidationError) as other:
        await services.orders.close_position(ME, "AAPL", None, D(25), "half")
    assert other.value.context["field"] == "percentage"
