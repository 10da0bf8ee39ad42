"""Rebalance the account to target weights: positions now -> whole-share targets -> orders.

1. Equity E and positions from the broker; each symbol's latest price from the broker's quote (the price
   the order router checks risk against).
2. Investable ``I = E * (1 - cash_buffer)``; target shares ``floor(I * w / price)`` for each target symbol
   (long-only, whole shares); symbols held but not in the targets get target 0 when ``close_unlisted``.
3. Drift ``|current value / E - w|``; a symbol whose drift is at most ``drift_threshold`` is left alone.
4. Orders = target - current, sells first (they free the cash the buys need), each run through the
   router's pre-trade risk checks. ``dry_run`` (default) sends nothing; otherwise each order that passed
   goes through `OrderRouter.place` with the idempotency key ``<key>:<symbol>`` (never sent twice).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nt_mcp.errors import ValidationError
from nt_mcp.services.order_router import OrderRouter, normalise_symbol
from nt_mcp.services.risk_guard import plan_order, send_order


@dataclass(frozen=True)
class RebalanceRequest:
    principal: str
    weights: dict[str, float]
    max_symbols: int
    cash_buffer: float
    drift_threshold: float
    close_unlisted: bool
    dry_run: bool
    idempotency_key: str | None


@dataclass
class RebalancePlan:
    equity: Decimal
    investable: Decimal
    rows: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    idempotency_key: str = ""


def check_weights(weights: dict[str, float], limit: int) -> dict[str, float]:
    """Symbols normalised; long-only weights that sum to 1 (VALIDATION_ERROR naming ``weights``)."""
    if not weights:
        raise ValidationError("weights is empty", argument="weights")
    if len(weights) > limit:
        raise ValidationError(
            f"at most {limit} symbols (NT_ANALYTICS_MAX_SYMBOLS), got {len(weights)}", argument="weights"
        )
    out: dict[str, float] = {}
    for symbol, weight in weights.items():
        name = normalise_symbol(symbol, "weights")
        if name in out:
            raise ValidationError(f"{name} is listed twice", argument="weights")
        if not math.isfinite(weight) or weight < 0 or weight > 1:
            raise ValidationError(f"weight of {name} must be in [0, 1] (long-only), got {weight}", argument="weights")
        out[name] = float(weight)
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise ValidationError(f"weights must sum to 1, got {sum(out.values()):.6g}", argument="weights")
    return out


async def rebalance(router: OrderRouter, req: RebalanceRequest) -> RebalancePlan:
    weights = check_weights(req.weights, req.max_symbols)
    key = req.idempotency_key or uuid.uuid4().hex
    account = await router.broker.get_account(req.principal)
    held = {p.symbol: p for p in await router.broker.get_positions(req.principal) if p.qty != 0}
    equity = account.equity
    investable = equity * Decimal(str(1.0 - req.cash_buffer))
    plan = RebalancePlan(equity, investable, idempotency_key=key)
    symbols = list(weights) + [s for s in held if s not in weights and req.close_unlisted]
    deltas: list[tuple[str, Decimal, str]] = []
    for symbol in symbols:
        await router.broker.check_symbol(symbol)
        price = (await router.broker.latest_quote(symbol)).price
        if price <= 0:
            raise ValidationError(f"{symbol} has no positive price", argument="weights")
        weight = weights.get(symbol, 0.0)
        target = Decimal(max(0, math.floor(investable * Decimal(str(weight)) / price)))
        current = held[symbol].qty if symbol in held else Decimal(0)
        current_weight = float(current * price / equity) if equity > 0 else 0.0
        drift = abs(current_weight - weight)
        trade = target - current if drift > req.drift_threshold else Decimal(0)
        plan.rows.append({"symbol": symbol, "price": str(price), "target_weight": weight,
                          "current_weight": current_weight, "drift": drift, "current_qty": str(current),
                          "target_qty": str(target), "trade_qty": str(trade),
                          "skipped": trade == 0 and target != current})  # fmt: skip
        if trade != 0:
            deltas.append((symbol, trade, "rebalance"))
    for symbol, trade, reason in sorted(deltas, key=lambda d: d[1] > 0):  # sells first
        side = "buy" if trade > 0 else "sell"
        plan.orders.append(await plan_order(router, req.principal, symbol, side, abs(trade), f"{key}:{symbol}", reason))
    if not req.dry_run:
        for order in plan.orders:
            if order["state"] == "planned":
                await send_order(router, req.principal, order)
    return plan
