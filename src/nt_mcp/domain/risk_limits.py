"""Pre-trade risk checks: pure functions over plain values, evaluated before an order leaves the server.

Each check has a stable code; `evaluate` returns every check's result and `enforce` raises
`RiskCheckFailed` carrying the first failing one (the tool layer turns it into a `BUSINESS_RULE`
error with that code). A limit of 0 (or an empty list) switches its check off.

| code | rule |
|---|---|
| RISK_SYMBOL_NOT_ALLOWED | the symbol is on the deny list, or an allow list is set and it is not on it |
| RISK_MAX_NOTIONAL | qty * reference price <= max order notional |
| RISK_MAX_POSITION_WEIGHT | abs(position value after the order) / equity <= max weight |
| RISK_MAX_OPEN_POSITIONS | an order opening a new symbol keeps open positions <= max |
| RISK_MAX_ORDERS_PER_DAY | orders already placed this trading day < max |
| RISK_DAILY_LOSS_HALT | no new risk today once equity - day start equity <= -(pct * day start equity) |
| MARKET_CLOSED | market orders only while the broker's clock says the market is open |

An order that only reduces an existing position (a sell of at most the long quantity, a buy of at
most the short quantity) always passes the symbol, notional, weight, open-positions and daily-loss
checks: a limit must never stop anyone from getting out. The orders-per-day cap and the market-hours
check apply to every order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class RiskLimits:
    max_order_notional: Decimal = Decimal(0)
    max_position_weight: Decimal = Decimal(0)
    max_open_positions: int = 0
    max_orders_per_day: int = 0
    daily_loss_limit_pct: Decimal = Decimal(0)
    allowlist: frozenset[str] = frozenset()
    denylist: frozenset[str] = frozenset()
    enforce_market_hours: bool = True


@dataclass(frozen=True)
class OrderIntent:
    symbol: str
    side: str  # "buy" | "sell"
    qty: Decimal  # > 0
    reference_price: Decimal  # limit/stop price, or the latest quote for market orders
    order_type: str


@dataclass(frozen=True)
class AccountSnapshot:
    equity: Decimal
    day_start_equity: Decimal
    positions: Mapping[str, Decimal] = field(default_factory=dict)  # symbol -> signed qty
    orders_today: int = 0
    market_open: bool = True


@dataclass(frozen=True)
class CheckResult:
    code: str
    passed: bool
    detail: str


class RiskCheckFailed(Exception):
    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.detail)
        self.result = result


def is_reducing(intent: OrderIntent, held: Decimal) -> bool:
    if intent.side == "sell":
        return held > 0 and intent.qty <= held
    return held < 0 and intent.qty <= -held


def evaluate(limits: RiskLimits, intent: OrderIntent, account: AccountSnapshot) -> list[CheckResult]:
    """Every check's result for ``intent`` against ``account``, in a fixed order."""
    held = account.positions.get(intent.symbol, Decimal(0))
    reducing = is_reducing(intent, held)
    notional = intent.qty * intent.reference_price
    signed = intent.qty if intent.side == "buy" else -intent.qty
    after = held + signed
    results: list[CheckResult] = []

    def add(code: str, passed: bool, detail: str) -> None:
        results.append(CheckResult(code, passed, detail))

    symbol = intent.symbol
    if symbol in limits.denylist:
        add("RISK_SYMBOL_NOT_ALLOWED", reducing, f"{symbol} is on the deny list (NT_RISK_SYMBOL_DENYLIST)")
    elif limits.allowlist and symbol not in limits.allowlist:
        add(
            "RISK_SYMBOL_NOT_ALLOWED",
            reducing,
            f"{symbol} is not on the allow list (NT_RISK_SYMBOL_ALLOWLIST)",
        )
    else:
        add("RISK_SYMBOL_NOT_ALLOWED", True, f"{symbol} may be traded")

    if limits.max_order_notional > 0:
        add(
            "RISK_MAX_NOTIONAL",
            reducing or notional <= limits.max_order_notional,
            f"order notional {notional:.2f} vs limit {limits.max_order_notional:.2f}",
        )

    if limits.max_position_weight > 0:
        equity = account.equity
        weight = abs(after) * intent.reference_price / equity if equity > 0 else Decimal("Infinity")
        add(
            "RISK_MAX_POSITION_WEIGHT",
            reducing or weight <= limits.max_position_weight,
            f"{symbol} would be {weight:.4f} of equity vs limit {limits.max_position_weight:.4f}",
        )

    if limits.max_open_positions > 0:
        open_now = sum(1 for q in account.positions.values() if q != 0)
        opens_new = held == 0 and after != 0
        count = open_now + (1 if opens_new else 0)
        add(
            "RISK_MAX_OPEN_POSITIONS",
            reducing or not opens_new or count <= limits.max_open_positions,
            f"{count} open positions after the order vs limit {limits.max_open_positions}",
        )

    if limits.max_orders_per_day > 0:
        add(
            "RISK_MAX_ORDERS_PER_DAY",
            account.orders_today < limits.max_orders_per_day,
            f"{account.orders_today} orders placed today vs limit {limits.max_orders_per_day}",
        )

    if limits.daily_loss_limit_pct > 0:
        day_pl = account.equity - account.day_start_equity
        floor = -limits.daily_loss_limit_pct * account.day_start_equity
        add(
            "RISK_DAILY_LOSS_HALT",
            reducing or day_pl > floor,
            f"day P&L {day_pl:.2f} vs halt at {floor:.2f} "
            f"({limits.daily_loss_limit_pct * 100:.2f}% of day start equity)",
        )

    if limits.enforce_market_hours and intent.order_type == "market":
        add(
            "MARKET_CLOSED",
            account.market_open,
            "market is open" if account.market_open else "market orders need the market open (broker clock)",
        )
    return results


def enforce(limits: RiskLimits, intent: OrderIntent, account: AccountSnapshot) -> list[CheckResult]:
    """`evaluate`, raising `RiskCheckFailed` with the first failed check; the passed checks otherwise."""
    results = evaluate(limits, intent, account)
    for result in results:
        if not result.passed:
            raise RiskCheckFailed(result)
    return results
