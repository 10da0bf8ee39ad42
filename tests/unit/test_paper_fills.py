"""The paper broker's fill rules and position arithmetic, with plain numbers."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from nt_mcp.domain.paper_fills import (
    PositionState,
    apply_fill,
    buying_power,
    commission,
    decide_fill,
    opening_value,
    qty_for_notional,
    split_order,
)

FLAT = PositionState(D(0), D(0), D(0))


def test_market_orders_pay_the_slippage() -> None:
    assert decide_fill(order_type="market", side="buy", price=D(100), slippage_bps=D(5)).fill_price == D("100.05")
    assert decide_fill(order_type="market", side="sell", price=D(100), slippage_bps=D(5)).fill_price == D("99.95")


@pytest.mark.parametrize(
    ("side", "price", "fills_at"),
    [
        ("buy", "101", None),
        ("buy", "99.5", "99.5"),
        ("buy", "100", "100"),
        ("sell", "99", None),
        ("sell", "103", "103"),
    ],
)
def test_limit_orders_fill_only_when_the_price_crosses(side: str, price: str, fills_at: str | None) -> None:
    decision = decide_fill(order_type="limit", side=side, price=D(price), slippage_bps=D(0), limit_price=D(100))
    assert decision.fill_price == (D(fills_at) if fills_at else None)


def test_a_limit_never_fills_worse_than_its_limit_even_with_slippage() -> None:
    decision = decide_fill(order_type="limit", side="buy", price=D("99.99"), slippage_bps=D(50), limit_price=D(100))
    assert decision.fill_price == D(100)  # slipped price 100.4900 capped at the limit


def test_stop_triggers_then_fills_as_market() -> None:
    below = decide_fill(order_type="stop", side="sell", price=D(96), slippage_bps=D(0), stop_price=D(95))
    assert below.fill_price is None and not below.triggered
    hit = decide_fill(order_type="stop", side="sell", price=D("94.5"), slippage_bps=D(10), stop_price=D(95))
    assert hit.triggered and hit.fill_price == D("94.4055")


def test_stop_limit_rests_as_a_limit_after_triggering() -> None:
    gapped = decide_fill(
        order_type="stop_limit", side="buy", price=D(106), slippage_bps=D(0), stop_price=D(105), limit_price=D("105.5")
    )
    assert gapped.triggered and gapped.fill_price is None  # triggered, but above its limit
    later = decide_fill(
        order_type="stop_limit",
        side="buy",
        price=D("104"),  # back below the stop: a triggered order stays triggered
        slippage_bps=D(0),
        stop_price=D(105),
        limit_price=D("105.5"),
        triggered=True,
    )
    assert later.fill_price == D(104)


def test_average_cost_and_realised_pnl_on_a_partial_close() -> None:
    pos, realised = apply_fill(FLAT, "buy", D(10), D(100))
    pos, realised = apply_fill(pos, "buy", D(30), D(120))
    assert pos.qty == D(40) and pos.avg_entry_price == D(115) and realised == 0
    pos, realised = apply_fill(pos, "sell", D(15), D(125))
    assert realised == D(150)  # (125 - 115) * 15
    assert pos.qty == D(25) and pos.avg_entry_price == D(115) and pos.realized_pl == D(150)
    pos, realised = apply_fill(pos, "sell", D(25), D(110))
    assert realised == D(-125) and pos.qty == 0 and pos.realized_pl == D(25)


def test_crossing_through_zero_opens_the_rest_at_the_fill_price() -> None:
    pos, _ = apply_fill(FLAT, "buy", D(5), D(10))
    pos, realised = apply_fill(pos, "sell", D(8), D(12))
    assert realised == D(10) and pos.qty == D(-3) and pos.avg_entry_price == D(12)
    pos, realised = apply_fill(pos, "buy", D(3), D(11))
    assert realised == D(3) and pos.qty == 0


def test_commission_is_per_order_plus_bps_rounded_to_the_cent() -> None:
    assert commission(D(10_000), D(1), D(0)) == D("1.00")
    assert commission(D(12_345), D("0.5"), D(3)) == D("4.20")  # 0.5 + 3.7035
    assert commission(D(100), D(0), D(0)) == D(0)


def test_notional_buys_fractional_shares_rounded_down() -> None:
    assert qty_for_notional(D(1000), D(3)) == D("333.333333333")


def test_an_order_splits_into_a_closing_and_an_opening_part() -> None:
    assert split_order("sell", D(15), D(10), D(0)) == (D(10), D(5))  # sells the 10 held, shorts 5
    assert split_order("sell", D(15), D(10), D(8)) == (D(2), D(13))  # 8 already being sold by open orders
    assert split_order("sell", D(5), D(-3), D(0)) == (D(0), D(5))  # adds to a short
    assert split_order("buy", D(5), D(-3), D(0)) == (D(3), D(2))  # covers 3, goes long 2
    assert split_order("buy", D(5), D(10), D(0)) == (D(0), D(5))


def test_opening_value_follows_alpacas_rule_for_short_sales() -> None:
    assert opening_value("buy", D(10), D(100)) == D(1000)
    assert opening_value("buy", D(10), D(100), limit_price=D(95)) == D(950)
    assert opening_value("sell", D(10), D(100)) == D(1030)  # 3% above the price
    assert opening_value("sell", D(10), D(100), limit_price=D(110)) == D(1100)  # or the limit, if higher


def test_buying_power_is_equity_less_gross_exposure_and_reservations() -> None:
    # cash 101,000 after shorting 10 x 100: equity 100,000, gross exposure 1,000
    assert buying_power(D(101_000), D(-1000), D(0)) == D(99_000)
    assert buying_power(D(50_000), D(0), D(20_000)) == D(30_000)  # long-only: cash less open buys
    assert buying_power(D(1000), D(-1000), D(0)) == D(0)  # never negative
