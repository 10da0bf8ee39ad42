"""The risk manager's rules applied to the account: which positions to close or trim, and the orders.

Rules (the seed's risk manager), in order:

1. **Stop loss**: a position whose unrealised loss reaches ``stop_loss_pct`` of its cost basis
   (``unrealized_pl / |cost_basis| <= -stop_loss_pct``) is closed entirely.
2. **VaR cap**: on the positions left, the portfolio VaR (``method``, ``confidence``, ``horizon``; see
   `nt_mcp.domain.risk`) in currency, as a share of account equity, must not exceed ``max_var_pct``. When
   it does, every remaining position is cut by the same factor ``f = max_var_pct / var_pct`` (VaR scales
   linearly with the positions for every method here), selling ``ceil(|qty| * (1 - f))`` whole shares
   (rounded up, so the VaR ends at or under the cap).

Each order (a market order reducing a position) runs the router's pre-trade risk checks; with
``dry_run`` (the default) nothing is sent. Otherwise each order that passed goes through
`OrderRouter.place` with the idempotency key ``<key>:<symbol>``, so running again with the same key
never sends an order twice.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from nt_mcp.adapters.brokers.base import Position
from nt_mcp.adapters.data.market import MarketData, domain_error
from nt_mcp.domain import risk
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.errors import BusinessLogicError, TradingError
from nt_mcp.services.market_series import Series, load_series
from nt_mcp.services.order_router import OrderParams, OrderRouter, build_request


@dataclass(frozen=True)
class RiskRules:
    stop_loss_pct: float | None
    max_var_pct: float | None
    method: risk.VarMethod
    confidence: float
    horizon: int
    lookback: int


@dataclass
class RiskCheckOutcome:
    equity: Decimal
    positions: list[dict[str, Any]]
    var_before_pct: float | None
    var_after_pct: float | None
    orders: list[dict[str, Any]] = field(default_factory=list)
    series: Series | None = None


async def plan_order(
    router: OrderRouter, principal: str, symbol: str, side: str, qty: Decimal, key: str, reason: str
) -> dict[str, Any]:
    """A market order checked against the router's pre-trade risk checks, not sent."""
    params = OrderParams(symbol=symbol, side=side, type="market", qty=qty)
    order: dict[str, Any] = {
        "symbol": symbol,
        "side": side,
        "qty": str(qty),
        "type": "market",
        "reason": reason,
        "idempotency_key": key,
        "state": "planned",
        "risk_checks": [],
    }
    try:
        checks = await router.check_risk(principal, build_request(params, "plan-only"))
    except BusinessLogicError as refused:
        order.update(state="refused", error={"code": refused.code, "message": refused.message})
        return order
    order["risk_checks"] = [{"code": c.code, "passed": c.passed, "detail": c.detail} for c in checks]
    return order


async def send_order(router: OrderRouter, principal: str, order: dict[str, Any]) -> None:
    """Send a planned order through the router (journaled, idempotent by its key); record the outcome."""
    params = OrderParams(symbol=order["symbol"], side=order["side"], type="market", qty=Decimal(order["qty"]))
    try:
        placed = await router.place(principal, params, order["idempotency_key"])
    except TradingError as error:
        order.update(state="failed", error={"code": error.code, "message": error.message})
        return
    order.update(
        state="submitted",
        order_id=placed.order.id,
        client_order_id=placed.order.client_order_id,
        status=placed.order.status,
        filled_qty=str(placed.order.filled_qty),
    )


def _exposure(position: Position) -> float:
    if position.market_value is not None:
        return float(position.market_value)
    price = position.current_price if position.current_price is not None else position.avg_entry_price
    return float(position.qty * price)


async def check_positions(
    router: OrderRouter,
    market: MarketData,
    principal: str,
    rules: RiskRules,
    dry_run: bool,
    idempotency_key: str | None,
) -> RiskCheckOutcome:
    """Apply the rules to ``principal``'s positions (see the module docstring)."""
    key = idempotency_key or uuid.uuid4().hex
    account = await router.broker.get_account(principal)
    positions = [p for p in await router.broker.get_positions(principal) if p.qty != 0]
    outcome = RiskCheckOutcome(account.equity, [], None, None)
    keep: list[Position] = []
    for p in positions:
        loss = (
            float(p.unrealized_pl) / abs(float(p.cost_basis)) if p.unrealized_pl is not None and p.cost_basis else 0.0
        )
        stopped = rules.stop_loss_pct is not None and loss <= -rules.stop_loss_pct
        outcome.positions.append(
            {
                "symbol": p.symbol,
                "qty": str(p.qty),
                "exposure": _exposure(p),
                "unrealized_return": loss,
                "stop_loss_hit": stopped,
            }
        )
        if stopped:
            side = "sell" if p.qty > 0 else "buy"
            outcome.orders.append(
                await plan_order(router, principal, p.symbol, side, abs(p.qty), f"{key}:{p.symbol}", "stop_loss")
            )
        else:
            keep.append(p)
    if keep and rules.max_var_pct is not None:
        symbols = [p.symbol for p in keep]
        outcome.series = await load_series(
            market,
            symbols,
            "1Day",
            rules.lookback + 1,
            min_bars=risk.MIN_OBSERVATIONS + 1,
            argument="lookback",
            symbols_argument="data_source",
        )
        returns = risk.simple_returns(outcome.series.closes)
        exposures = np.array([_exposure(p) for p in keep])
        try:
            tail = risk.tail_risk(returns, exposures, rules.method, rules.confidence, rules.horizon)
        except DomainValueError as error:
            raise domain_error(error) from None
        equity = float(account.equity)
        var_pct = tail.var * risk.gross(exposures) / equity if equity > 0 else math.inf
        outcome.var_before_pct = var_pct
        outcome.var_after_pct = var_pct
        if var_pct > rules.max_var_pct:
            factor = rules.max_var_pct / var_pct
            remaining = exposures.copy()
            for i, p in enumerate(keep):
                cut = min(Decimal(math.ceil(float(abs(p.qty)) * (1 - factor) - 1e-9)), abs(p.qty))
                remaining[i] *= float((abs(p.qty) - cut) / abs(p.qty))
                if cut > 0:
                    side = "sell" if p.qty > 0 else "buy"
                    outcome.orders.append(
                        await plan_order(router, principal, p.symbol, side, cut, f"{key}:{p.symbol}", "var_cap")
                    )
            if risk.gross(remaining) > 0:
                after = risk.tail_risk(returns, remaining, rules.method, rules.confidence, rules.horizon)
                outcome.var_after_pct = after.var * risk.gross(remaining) / equity
            else:
                outcome.var_after_pct = 0.0
    if not dry_run:
        for order in outcome.orders:
            if order["state"] == "planned":
                await send_order(router, principal, order)
    return outcome
