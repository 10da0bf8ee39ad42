"""The paper broker on both storage backends: fills, resting orders, cancel, P&L, the journal,
idempotency, and an account that survives a restart."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
import sqlalchemy as sa

from nt_mcp.adapters.brokers.paper import PaperConfig
from nt_mcp.config import Settings
from nt_mcp.domain.risk_limits import RiskLimits
from nt_mcp.errors import BusinessLogicError, NotFoundError
from nt_mcp.infra.schema import fills, orders
from nt_mcp.services.order_router import OrderParams
from nt_mcp.tools.services import Services
from tests.fakes import SetPrices, use_paper_prices

ME = "alice"


async def _place(services: Services, key: str, **fields: object) -> object:
    params = OrderParams(**{"symbol": "AAPL", "side": "buy", "qty": D(10)} | fields)  # type: ignore[arg-type]
    return (await services.orders.place(ME, params, key)).order


async def _count(services: Services, table: sa.Table) -> int:
    async with services.db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(table))).scalar_one())


async def test_market_fill_commission_and_account_survive_a_restart(storage_settings: Settings) -> None:
    prices = SetPrices(AAPL="100")
    config = PaperConfig(slippage_bps=D(10), commission_per_order=D(1))
    first = await Services.start(storage_settings)
    try:
        use_paper_prices(first, prices, config)
        order = await _place(first, "k-1")
        assert order.status == "filled" and order.filled_avg_price == D("100.1")  # type: ignore[attr-defined]
        assert order.commission == D(1)  # type: ignore[attr-defined]
    finally:
        await first.close()

    second = await Services.start(storage_settings)  # a new process on the same database
    try:
        use_paper_prices(second, prices, config)
        account = await second.broker.get_account(ME)
        assert account.cash == D(100_000) - D(1001) - D(1)
        assert account.equity == account.cash + D(1000)
        (position,) = await second.broker.get_positions(ME)
        assert (position.symbol, position.qty, position.avg_entry_price) == ("AAPL", D(10), D("100.1"))
        assert position.unrealized_pl == D(-1)
        assert await _count(second, fills) == 1
        again = await _place(second, "k-1")  # same key after the restart: the same order
        assert again.id == order.id  # type: ignore[attr-defined]
        assert await _count(second, orders) == 1 and await _count(second, fills) == 1
    finally:
        await second.close()


async def test_limit_rests_then_fills_when_a_later_price_crosses(services: Services) -> None:
    prices = SetPrices(AAPL="100")
    use_paper_prices(services, prices)
    resting = await _place(services, "lim", type="limit", limit_price=D(95))
    assert resting.status == "new"  # type: ignore[attr-defined]
    account = await services.broker.get_account(ME)
    assert account.buying_power == D(100_000) - D(950)  # reserved by the resting buy
    prices.set("AAPL", "96")
    assert (await services.broker.get_order(ME, resting.id)).status == "new"  # type: ignore[attr-defined]
    prices.set("AAPL", "94.5")
    filled = await services.broker.get_order(ME, resting.id)  # type: ignore[attr-defined]
    assert filled.status == "filled" and filled.filled_avg_price == D("94.5")
    assert await _count(services, fills) == 1


async def test_stop_loss_triggers_and_realises_the_loss_on_a_partial_close(services: Services) -> None:
    prices = SetPrices(AAPL="100")
    use_paper_prices(services, prices)
    await _place(services, "buy")
    stop = await _place(services, "stop", side="sell", qty=D(4), type="stop", stop_price=D(90))
    assert stop.status == "new"  # type: ignore[attr-defined]
    prices.set("AAPL", "89")
    (position,) = await services.broker.get_positions(ME)
    assert position.qty == D(6) and position.avg_entry_price == D(100)
    assert position.realized_pl == D(-44)  # (89 - 100) * 4
    account = await services.broker.get_account(ME)
    assert account.realized_pl == D(-44)
    assert account.equity == D(100_000) - D(44) - D(66)  # 44 realised + 6 * 11 unrealised


async def test_cancel_a_resting_order_but_not_a_filled_one(services: Services) -> None:
    prices = SetPrices(AAPL="100")
    use_paper_prices(services, prices)
    resting = await _place(services, "r", type="limit", limit_price=D(50))
    canceled = await services.broker.cancel_order(ME, resting.id)  # type: ignore[attr-defined]
    assert canceled.status == "canceled"
    prices.set("AAPL", "40")
    assert (await services.broker.get_order(ME, resting.id)).status == "canceled"  # type: ignore[attr-defined]
    filled = await _place(services, "m")
    with pytest.raises(BusinessLogicError) as caught:
        await services.broker.cancel_order(ME, filled.id)  # type: ignore[attr-defined]
    assert caught.value.code == "ORDER_NOT_CANCELABLE"
    with pytest.raises(NotFoundError):
        await services.broker.get_order("bob", filled.id)  # type: ignore[attr-defined]


async def test_with_shorting_off_no_short_and_no_spending_cash_twice(services: Services) -> None:
    use_paper_prices(services, SetPrices(AAPL="100"), PaperConfig(slippage_bps=D(0), allow_short=False))
    with pytest.raises(BusinessLogicError) as short:
        await _place(services, "s", side="sell", qty=D(1))
    assert short.value.code == "INSUFFICIENT_POSITION"
    await _place(services, "big", qty=D(600), type="limit", limit_price=D(99))
    with pytest.raises(BusinessLogicError) as broke:
        await _place(services, "big2", qty=D(500))
    assert broke.value.code == "INSUFFICIENT_BUYING_POWER"
    async with services.db.connect() as conn:
        statuses = dict((await conn.execute(sa.select(orders.c.side, orders.c.status))).all())
    assert statuses == {"sell": "rejected", "buy": statuses["buy"]}
    assert (await services.broker.get_account(ME)).cash == D(100_000)


async def test_risk_limit_refusal_places_nothing(services: Services) -> None:
    use_paper_prices(
        services, SetPrices(AAPL="100"), limits=RiskLimits(max_order_notional=D(500), enforce_market_hours=False)
    )
    with pytest.raises(BusinessLogicError) as caught:
        await _place(services, "too-big")
    assert caught.value.code == "RISK_MAX_NOTIONAL"
    assert await _count(services, orders) == 0


async def test_close_position_partly_then_fully(services: Services) -> None:
    prices = SetPrices(AAPL="100")
    use_paper_prices(services, prices)
    await _place(services, "open", qty=D(8))
    prices.set("AAPL", "110")
    half = await services.orders.close_position(ME, "aapl", None, D(50), "close-half")
    assert half.order.side == "sell" and half.order.filled_qty == D(4)
    again = await services.orders.close_position(ME, "aapl", None, D(50), "close-half")
    assert again.replayed and again.order.id == half.order.id
    rest = await services.orders.close_position(ME, "AAPL", None, None, None)
    assert rest.order.filled_qty == D(4)
    assert await services.broker.get_positions(ME) == []
    assert (await services.broker.get_account(ME)).realized_pl == D(80)
    with pytest.raises(NotFoundError):
        await services.orders.close_position(ME, "AAPL", None, None, None)
