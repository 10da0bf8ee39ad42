"""The paper broker's fill rules and position arithmetic, as pure functions on Decimals.

Fill rules (``price`` is the latest quote, ``slip = slippage_bps / 10_000``):

- market: buys fill at ``price * (1 + slip)``, sells at ``price * (1 - slip)``.
- limit: marketable when a buy's ``price <= limit`` (a sell's ``price >= limit``); fills at the
  slipped price capped by the limit (a buy never pays more than its limit, a sell never gets less).
- stop: triggers when a buy's ``price >= stop`` (a sell's ``price <= stop``), then fills as market.
- stop_limit: triggers like a stop, then rests and fills like a limit at ``limit_price``.

Fill prices are rounded to 0.0001, commissions (``per_order + notional * commission_bps / 10_000``)
to the cent, half up. Positions: buying into a long (or selling into a short) moves the average entry
price to the quantity-weighted average; reducing realises ``(fill - avg) * qty`` for a long
(``(avg - fill) * qty`` for a short) and keeps the average; crossing through zero realises the whole
old position and opens the rest at the fill price. Commissions are charged to cash, not to the
average price.

Short selling and buying power (the paper broker's margin rules, see `buying_power`): a sell beyond
the long position opens a short; every symbol is assumed easy to borrow (no locate, no borrow fee,
no recall). An order splits into a *closing* part (it reduces the position, net of the other open
orders already reducing it) and an *opening* part; only the opening part needs buying power:
``qty * (limit, else stop, else fill price)`` for a buy, and for a short sale Alpaca's rule
``qty * max(limit, 1.03 * price)``. There is no leverage: gross exposure (longs plus the absolute
value of shorts) plus what open orders reserve never exceeds equity.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

PRICE_STEP = Decimal("0.0001")
SHORT_SALE_MARKUP = Decimal("1.03")  # Alpaca values an opening short at 3% above the current price
CENT = Decimal("0.01")
QTY_STEP = Decimal("0.000000001")
_BPS = Decimal(10_000)


@dataclass(frozen=True)
class FillDecision:
    """What an order does at ``price``: fill at ``fill_price``, or not (yet); ``triggered`` is the
    stop state after this price (a triggered stop_limit keeps resting as a limit)."""

    fill_price: Decimal | None
    triggered: bool


def slipped(price: Decimal, side: str, slippage_bps: Decimal) -> Decimal:
    factor = 1 + slippage_bps / _BPS if side == "buy" else 1 - slippage_bps / _BPS
    return (price * factor).quantize(PRICE_STEP, rounding=ROUND_HALF_UP)


def _limit_fill(side: str, price: Decimal, limit: Decimal, slippage_bps: Decimal) -> Decimal | None:
    if side == "buy":
        return min(slipped(price, side, slippage_bps), limit) if price <= limit else None
    return max(slipped(price, side, slippage_bps), limit) if price >= limit else None


def _stop_hit(side: str, price: Decimal, stop: Decimal) -> bool:
    return price >= stop if side == "buy" else price <= stop


def decide_fill(
    *,
    order_type: str,
    side: str,
    price: Decimal,
    slippage_bps: Decimal,
    limit_price: Decimal | None = None,
    stop_price: Decimal | None = None,
    triggered: bool = False,
) -> FillDecision:
    """Whether an order of ``order_type`` fills at the quote ``price``, and at what price."""
    if order_type == "market":
        return FillDecision(slipped(price, side, slippage_bps), False)
    if order_type == "limit":
        assert limit_price is not None
        return FillDecision(_limit_fill(side, price, limit_price, slippage_bps), False)
    if order_type == "stop":
        assert stop_price is not None
        if triggered or _stop_hit(side, price, stop_price):
            return FillDecision(slipped(price, side, slippage_bps), True)
        return FillDecision(None, False)
    if order_type == "stop_limit":
        assert stop_price is not None and limit_price is not None
        now_triggered = triggered or _stop_hit(side, price, stop_price)
        if not now_triggered:
            return FillDecision(None, False)
        return FillDecision(_limit_fill(side, price, limit_price, slippage_bps), True)
    raise ValueError(f"the paper broker cannot fill {order_type} orders")


def commission(notional: Decimal, per_order: Decimal, bps: Decimal) -> Decimal:
    return (per_order + abs(notional) * bps / _BPS).quantize(CENT, rounding=ROUND_HALF_UP)


def qty_for_notional(notional: Decimal, price: Decimal) -> Decimal:
    """Shares that ``notional`` buys at ``price``, rounded down to 1e-9 (fractional shares)."""
    return (notional / price).quantize(QTY_STEP, rounding=ROUND_DOWN)


@dataclass(frozen=True)
class PositionState:
    qty: Decimal  # signed: negative is short
    avg_entry_price: Decimal
    realized_pl: Decimal


def apply_fill(position: PositionState, side: str, qty: Decimal, price: Decimal) -> tuple[PositionState, Decimal]:
    """The position after a fill of ``qty`` (> 0) at ``price``, and the P&L that fill realised."""
    signed = qty if side == "buy" else -qty
    old_qty, avg = position.qty, position.avg_entry_price
    new_qty = old_qty + signed
    if old_qty == 0 or (old_qty > 0) == (signed > 0):  # opening or adding
        new_avg = (avg * abs(old_qty) + price * qty) / abs(new_qty)
        return PositionState(new_qty, new_avg, position.realized_pl), Decimal(0)
    closed = min(abs(old_qty), qty)
    direction = 1 if old_qty > 0 else -1
    realized = (price - avg) * closed * direction
    if new_qty == 0:
        new_avg = Decimal(0)
    elif (new_qty > 0) == (old_qty > 0):  # reduced, same side
        new_avg = avg
    else:  # crossed through zero: the remainder opens at the fill price
        new_avg = price
    return PositionState(new_qty, new_avg, position.realized_pl + realized), realized


def split_order(side: str, qty: Decimal, held: Decimal, already_closing: Decimal) -> tuple[Decimal, Decimal]:
    """``(closing, opening)`` parts of an order of ``qty`` on ``side`` against the signed position
    ``held``, when other open orders on the same side already close ``already_closing`` of it.
    A sell closes at most the long quantity, a buy at most the short quantity; the rest opens
    (or extends) a position on the other side."""
    closable = max(held, Decimal(0)) if side == "sell" else max(-held, Decimal(0))
    free = max(closable - already_closing, Decimal(0))
    closing = min(qty, free)
    return closing, qty - closing


def opening_value(
    side: str, qty: Decimal, price: Decimal, limit_price: Decimal | None = None, stop_price: Decimal | None = None
) -> Decimal:
    """Buying power the opening part ``qty`` of an order needs. A buy: ``qty * (limit, else stop,
    else price)``. A short sale (Alpaca's rule): ``qty * max(limit, 1.03 * price)``."""
    if side == "buy":
        return qty * (limit_price or stop_price or price)
    return qty * max(limit_price or Decimal(0), price * SHORT_SALE_MARKUP)


def buying_power(cash: Decimal, short_market_value: Decimal, reserved: Decimal) -> Decimal:
    """What new opening orders may still use, with no leverage:
    ``equity - (long value + |short value|) - reserved``, which equals
    ``cash - 2 * |short value| - reserved`` (the short sale proceeds sit in cash), and never below 0."""
    return max(cash - 2 * abs(short_market_value) - reserved, Decimal(0))
