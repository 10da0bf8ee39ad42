"""The paper broker as a margin account, on both storage backends: short selling (and turning it off),
P&L and average price through shorts and flips, buying power that counts short exposure, and the
day's P&L measured from the previous session's close, across a day boundary."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal as D
from typing import Any

import pytest

from nt_mcp.adapters.brokers.paper import NEW_YORK, PaperConfig
from nt_mcp.domain.risk_limits import RiskLimits
from nt_mcp.errors import BusinessLogicError
from nt_mcp.services.order_router import OrderParams
from nt_mcp.tools.services import Services
from tests.fakes import SetPrices, use_paper_prices

ME = "alice"
TUESDAY, WEDNESDAY = date(2026, 11, 17), date(2026, 11, 18)


def _order(**fields: Any) -> OrderParams:
    return OrderParams(**{"symbol": "AAPL", "side": "buy", "qty": D(10)} | fields)


class Clock:
    def __init__(self, day: date, hour: int, minute: int = 0) -> None:
        self.set(day, hour, minute)

    def set(self, day: date, hour: int, minute: int = 0) -> None:
        self.moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=NEW_YORK)

    def __call__(self) -> datetime:
        return self.moment


async def test_a_sell_beyond_the_position_opens_a_short_with_the_borrow_terms_stated(services: Services) -> None:
    prices = SetPrices(AAPL="100")
    use_paper_prices(services, prices)
    sold = (await services.orders.place(ME, _order(side="sell"), "short")).order
    assert sold.status == "filled" and any("easy to borrow" in n for n in sold.notes)
    (position,) = await services.broker.get_positions(ME)
    assert (position.qty, position.side, position.avg_entry_price) == (D(-10), "short", D(100))
    assert position.short_borrow is not None and "no borrow fee" in position.short_borrow
    account = await services.broker.get_account(ME)
    assert account.cash == D(101_000) and account.equity == D(100_000)
    assert account.buying_power == D(99_000)  # equity - |short value|: no leverage
    prices.set("AAPL", "90")
    (position,) = await services.broker.get_positions(ME)
    assert position.unrealized_pl == D(100) and position.market_value == D(-900)
    assert (await services.broker.get_account(ME)).equity == D(100_100)


async def test_pnl_and_average_price_through_a_cover_and_a_flip(services: Services) -> None:
    prices = SetPrices(AAPL="100")
    use_paper_prices(services, prices)
    await services.orders.place(ME, _order(side="sell"), "open-short")  # -10 @ 100
    prices.set("AAPL", "90")
    await services.orders.place(ME, _order(qty=D(4)), "cover-4")  # realises (100 - 90) * 4
    (position,) = await services.broker.get_positions(ME)
    assert (position.qty, position.avg_entry_price, position.realized_pl) == (D(-6), D(100), D(40))
    prices.set("AAPL", "95")
    await services.orders.place(ME, _order(qty=D(16)), "flip")  # covers 6 (+30), opens 10 long @ 95
    (position,) = await services.broker.get_positions(ME)
    assert (position.qty, position.side, position.avg_entry_price, position.realized_pl) == (
        D(10),
        "long",
        D(95),
        D(70),
    )
    assert position.short_borrow is None
    account = await services.broker.get_account(ME)
    assert account.realized_pl == D(70) and account.equity == D(100_070)
    prices.set("AAPL", "97")
    await services.orders.place(ME, _order(side="sell", qty=D(15)), "flip-back")  # +20 realised, -5 @ 97
    (position,) = await services.broker.get_positions(ME)
    assert (position.qty, position.avg_entry_price, position.realized_pl) == (D(-5), D(97), D(90))


async def test_buying_power_counts_the_short_exposure(services: Services) -> None:
    use_paper_prices(services, SetPrices(AAPL="100", MSFT="50"))
    await services.orders.place(ME, _order(side="sell", qty=D(900)), "short-90k")  # 900 x 1.03 x 100 <= 100,000
    account = await services.broker.get_account(ME)
    assert account.cash == D(190_000) and account.buying_power == D(10_000)
    with pytest.raises(BusinessLogicError) as refused:
        await services.orders.place(ME, _order(symbol="MSFT", qty=D(201)), "long-10050")
    assert refused.value.code == "INSUFFICIENT_BUYING_POWER"
    with pytest.raises(BusinessLogicError) as more_short:
        await services.orders.place(ME, _order(side="sell", qty=D(100)), "short-more")  # 10,300 > 10,000
    assert more_short.value.code == "INSUFFICIENT_BUYING_POWER"
    await services.orders.place(ME, _order(symbol="MSFT", qty=D(200)), "long-10000")  # exactly fits
    assert (await services.broker.get_account(ME)).buying_power == D(0)
    covered = await services.orders.place(ME, _order(qty=D(900)), "cover-all")  # covering needs none
    assert covered.order.status == "filled"


async def test_shorting_off_refuses_a_sell_beyond_the_position(services: Services) -> None:
    use_paper_prices(services, SetPrices(AAPL="100"), PaperConfig(slippage_bps=D(0), allow_short=False))
    await services.orders.place(ME, _order(), "buy-10")
    with pytest.raises(BusinessLogicError) as refused:
        await services.orders.place(ME, _order(side="sell", qty=D(11)), "sell-11")
    assert refused.value.code == "INSUFFICIENT_POSITION" and "NT_PAPER_ALLOW_SHORT" in refused.value.message
    await services.orders.place(ME, _order(side="sell", qty=D(10)), "sell-10")
    assert await services.broker.get_positions(ME) == []


async def test_the_daily_loss_halt_holds_across_a_day_boundary(services: Services) -> None:
    prices = SetPrices(AAPL="100")
    clock = Clock(TUESDAY, 11)
    limits = RiskLimits(daily_loss_limit_pct=D("0.05"), enforce_market_hours=False)
    broker = use_paper_prices(services, prices, limits=limits, now=clock)
    await services.orders.place(ME, _order(qty=D(500)), "buy-500")
    resting = await services.orders.place(
        ME, _order(qty=D(100), type="limit", limit_price=D(90), time_in_force="gtc"), "buy-dip"
    )
    assert resting.order.status == "new"
    prices.set_close("AAPL", TUESDAY, "100")  # Tuesday's session closes at 100
    clock.set(WEDNESDAY, 9, 35)
    prices.set("AAPL", "89")
    await broker.get_positions(ME)  # the resting buy fills at 89 before the day's first account read
    account = await broker.get_account(ME)
    # cash 41,100 and 600 shares now; undo today's fill: 50,000 cash and 500 shares at Tuesday's close
    assert account.day_start_equity == D(100_000)
    assert account.equity == D(41_100) + 600 * D(89) and account.day_pl == D(-5_500)
    assert "previous session's close" in account.day_start_basis
    prices.set("AAPL", "80")
    account = await broker.get_account(ME)
    assert account.day_start_equity == D(100_000) and account.day_pl == D(-10_900)
    with pytest.raises(BusinessLogicError) as halted:
        await services.orders.place(ME, _order(qty=D(1)), "buy-more")
    assert halted.value.code == "RISK_DAILY_LOSS_HALT"
    out = await services.orders.place(ME, _order(side="sell", qty=D(100)), "get-out")  # reducing still passes
    assert out.order.status == "filled"
    prices.set_close("AAPL", WEDNESDAY, "80")
    clock.set(date(2026, 11, 19), 10)  # Thursday: the day starts from Wednesday's close
    account = await broker.get_account(ME)
    assert account.day_start_equity == account.equity and account.day_pl == 0
    await services.orders.place(ME, _order(qty=D(1)), "thursday-buy")


async def test_a_new_account_starts_its_first_day_at_its_starting_cash(services: Services) -> None:
    use_paper_prices(services, SetPrices(AAPL="100"), now=Clock(WEDNESDAY, 10))
    account = await services.broker.get_account("newcomer")
    assert account.day_start_equity == D(100_000) and account.day_pl == 0
