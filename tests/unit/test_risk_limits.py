"""Pre-trade risk checks: each limit, its code, and the rule that reducing a position always passes."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from nt_mcp.domain.risk_limits import AccountSnapshot, OrderIntent, RiskCheckFailed, RiskLimits, enforce, evaluate

ACCOUNT = AccountSnapshot(equity=D(100_000), day_start_equity=D(100_000), positions={"MSFT": D(10)})


def _buy(qty: str = "10", price: str = "100", symbol: str = "AAPL", kind: str = "limit") -> OrderIntent:
    return OrderIntent(symbol, "buy", D(qty), D(price), kind)


def _fails(limits: RiskLimits, intent: OrderIntent, account: AccountSnapshot = ACCOUNT) -> str:
    with pytest.raises(RiskCheckFailed) as caught:
        enforce(limits, intent, account)
    return caught.value.result.code


def test_everything_off_passes_and_lists_the_checks_run() -> None:
    results = enforce(RiskLimits(enforce_market_hours=False), _buy(), ACCOUNT)
    assert [r.code for r in results] == ["RISK_SYMBOL_NOT_ALLOWED"] and results[0].passed


def test_max_notional() -> None:
    limits = RiskLimits(max_order_notional=D(5_000), enforce_market_hours=False)
    assert enforce(limits, _buy("50"), ACCOUNT)[-1].code == "RISK_MAX_NOTIONAL"  # exactly 5,000 passes
    assert _fails(limits, _buy("51")) == "RISK_MAX_NOTIONAL"


def test_max_position_weight_counts_the_existing_position() -> None:
    limits = RiskLimits(max_position_weight=D("0.10"), enforce_market_hours=False)
    account = AccountSnapshot(D(100_000), D(100_000), positions={"AAPL": D(60)})
    assert _fails(limits, _buy("41"), account) == "RISK_MAX_POSITION_WEIGHT"  # 101 * 100 > 10,000
    enforce(limits, _buy("40"), account)


def test_max_open_positions_only_stops_a_new_symbol() -> None:
    limits = RiskLimits(max_open_positions=1, enforce_market_hours=False)
    assert _fails(limits, _buy(symbol="AAPL")) == "RISK_MAX_OPEN_POSITIONS"
    enforce(limits, _buy(symbol="MSFT"), ACCOUNT)  # adds to the open MSFT position


def test_max_orders_per_day_applies_to_every_order() -> None:
    limits = RiskLimits(max_orders_per_day=3, enforce_market_hours=False)
    busy = AccountSnapshot(D(100_000), D(100_000), positions={"MSFT": D(10)}, orders_today=3)
    assert _fails(limits, _buy(), busy) == "RISK_MAX_ORDERS_PER_DAY"
    assert _fails(limits, OrderIntent("MSFT", "sell", D(10), D(100), "limit"), busy) == "RISK_MAX_ORDERS_PER_DAY"


def test_daily_loss_halt_blocks_new_risk_but_not_getting_out() -> None:
    limits = RiskLimits(daily_loss_limit_pct=D("0.02"), enforce_market_hours=False)
    down = AccountSnapshot(D(97_999), D(100_000), positions={"MSFT": D(10)})
    assert _fails(limits, _buy(), down) == "RISK_DAILY_LOSS_HALT"
    enforce(limits, OrderIntent("MSFT", "sell", D(10), D(100), "market"), down)
    assert _fails(limits, OrderIntent("MSFT", "sell", D(11), D(100), "market"), down) == "RISK_DAILY_LOSS_HALT"
    enforce(limits, _buy(), AccountSnapshot(D(98_001), D(100_000)))


def test_symbol_lists() -> None:
    deny = RiskLimits(denylist=frozenset({"GME"}), enforce_market_hours=False)
    assert _fails(deny, _buy(symbol="GME")) == "RISK_SYMBOL_NOT_ALLOWED"
    allow = RiskLimits(allowlist=frozenset({"SPY"}), enforce_market_hours=False)
    assert _fails(allow, _buy(symbol="AAPL")) == "RISK_SYMBOL_NOT_ALLOWED"
    enforce(allow, _buy(symbol="SPY"), ACCOUNT)


def test_market_hours_only_for_market_orders() -> None:
    closed = AccountSnapshot(D(100_000), D(100_000), market_open=False)
    assert _fails(RiskLimits(), _buy(kind="market"), closed) == "MARKET_CLOSED"
    enforce(RiskLimits(), _buy(kind="limit"), closed)


def test_evaluate_reports_every_failure_not_just_the_first() -> None:
    limits = RiskLimits(max_order_notional=D(1), max_orders_per_day=1)
    account = AccountSnapshot(D(100_000), D(100_000), orders_today=5, market_open=False)
    failed = [r.code for r in evaluate(limits, _buy(kind="market"), account) if not r.passed]
    assert failed == ["RISK_MAX_NOTIONAL", "RISK_MAX_ORDERS_PER_DAY", "MARKET_CLOSED"]


def test_short_exposure_counts_in_the_weight_and_a_flip_is_not_a_reduction() -> None:
    limits = RiskLimits(max_position_weight=D("0.25"), enforce_market_hours=False)
    flat = AccountSnapshot(D(100_000), D(100_000))
    assert _fails(limits, OrderIntent("AAPL", "sell", D(300), D(100), "market"), flat) == "RISK_MAX_POSITION_WEIGHT"
    enforce(limits, OrderIntent("AAPL", "sell", D(250), D(100), "market"), flat)
    long = AccountSnapshot(D(100_000), D(100_000), positions={"AAPL": D(100)})
    # selling 500 of 100 held flips to -400: not a reduction, and -400 x 100 is 40% of equity
    assert _fails(limits, OrderIntent("AAPL", "sell", D(500), D(100), "market"), long) == "RISK_MAX_POSITION_WEIGHT"
    short = AccountSnapshot(D(90_000), D(100_000), positions={"AAPL": D(-400)})
    halt = RiskLimits(daily_loss_limit_pct=D("0.05"), enforce_market_hours=False)
    enforce(halt, OrderIntent("AAPL", "buy", D(400), D(125), "market"), short)  # covering always passes
    assert _fails(halt, OrderIntent("AAPL", "sell", D(1), D(125), "market"), short) == "RISK_DAILY_LOSS_HALT"
