"""Run a strategy on the account: signal -> target position -> order, per symbol.

For each symbol:

1. Recent bars (``lookback_bars`` of ``timeframe``, enough for the strategy's indicators) from the
   market data source.
2. The strategy's signals on them (the same code a backtest runs). The position the strategy holds
   now is its last decided signal: +1 long, -1 short, 0 flat (a NaN signal means "no change", so
   the last non-NaN value counts). Stops that a backtest would apply inside a bar are not simulated
   here: only the signal.
3. Target quantity = direction x floor(budget / last price), whole shares, where
   budget = equity x ``capital_fraction`` / number of symbols.
4. The order = target - current position (none when equal). Each planned order runs the pre-trade
   risk checks; a refused order is reported with its check's code and is not sent.

With ``dry_run`` the plan is returned and nothing is sent. Otherwise each order that passed goes
through `OrderRouter.place` with the idempotency key ``<run key>:<symbol>``, so running the same
``idempotency_key`` again returns the recorded run and never places an order twice. Every run is
written to ``strategy_runs`` (through the spool if the database is down).
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import sqlalchemy as sa

from nt_mcp.adapters.data.market import MarketData
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.strategies import StrategySpec
from nt_mcp.errors import BusinessLogicError, TradingError, ValidationError
from nt_mcp.infra.db import Database
from nt_mcp.infra.schema import strategy_runs
from nt_mcp.infra.spool import DurableWriter
from nt_mcp.services.order_router import OrderParams, OrderRouter, build_request, normalise_symbol

BAR_SECONDS = {"1Min": 60, "5Min": 300, "15Min": 900, "1Hour": 3600, "1Day": 86400}


def current_direction(signals: np.ndarray) -> int:
    """The last decided signal (NaN = no change): +1, -1 or 0 (0 when nothing was ever decided)."""
    decided = signals[~np.isnan(signals)]
    return int(np.sign(decided[-1])) if decided.size else 0


@dataclass(frozen=True)
class ExecutionRequest:
    """A validated request: ``params`` already checked against ``strategy`` (defaults filled in)."""

    principal: str
    strategy: StrategySpec
    symbols: list[str]
    params: dict[str, Any]
    capital_fraction: float
    timeframe: str
    lookback_bars: int
    dry_run: bool
    idempotency_key: str | None


class StrategyExecutor:
    def __init__(
        self, db: Database, writer: DurableWriter, router: OrderRouter, market_data: MarketData, mode: str
    ) -> None:
        self.db = db
        self.writer = writer
        self.router = router
        self.market_data = market_data
        self.mode = mode

    async def _recorded(self, run_id: str) -> dict[str, Any] | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(strategy_runs).where(strategy_runs.c.id == run_id))).mappings().first()
        return dict(row) if row is not None else None

    async def execute(self, req: ExecutionRequest) -> tuple[dict[str, Any], bool]:
        """The run record (see ``strategy_runs``) and whether it is a replay of an earlier run."""
        spec, params = req.strategy, req.params
        symbols = [normalise_symbol(s, "symbols") for s in req.symbols]
        if len(set(symbols)) != len(symbols):
            raise ValidationError("symbols lists a symbol twice.", argument="symbols")
        key = req.idempotency_key or uuid.uuid4().hex
        run_id = "run-" + hashlib.sha256(f"{req.principal}:{key}".encode()).hexdigest()[:24]
        recorded = await self._recorded(run_id)
        if recorded is not None:
            return recorded, True

        account = await self.router.broker.get_account(req.principal)
        held = {p.symbol: p.qty for p in await self.router.broker.get_positions(req.principal)}
        budget = account.equity * Decimal(str(req.capital_fraction)) / len(symbols)
        now = datetime.now(UTC)
        span = timedelta(seconds=BAR_SECONDS[req.timeframe] * req.lookback_bars * 7 // 5 + 4 * 86400)
        signals: dict[str, Any] = {}
        planned: list[dict[str, Any]] = []
        for symbol in symbols:
            bars = await self.market_data.get_bars(symbol, req.timeframe, now - span, now)
            try:  # in a worker thread: a strategy may fit models (neural_forecast)
                result = await asyncio.to_thread(spec.run, bars, params)
            except DomainValueError as error:
                raise ValidationError(error.message, argument=f"params.{error.argument}") from None
            if result.warmup >= len(bars.close) - 1:  # the indicators must be defined before the last bar
                raise ValidationError(
                    f"Only {len(bars.close)} {req.timeframe} bars of {symbol} in the lookback window; the strategy "
                    f"needs more than {result.warmup}. Raise lookback_bars.",
                    argument="lookback_bars",
                )
            direction = current_direction(result.signals)
            price = Decimal(str(round(float(bars.close[-1]), 4)))
            target = Decimal(direction * math.floor(budget / price)) if price > 0 else Decimal(0)
            current = held.get(symbol, Decimal(0))
            last_bar = np.datetime_as_string(bars.timestamps[-1], unit="s") + "Z"
            signals[symbol] = {
                "direction": direction,
                "last_price": str(price),
                "last_bar": last_bar,
                "bars": len(bars.close),
                "source": self.market_data.source,
                "target_qty": str(target),
                "current_qty": str(current),
            }
            delta = target - current
            if delta != 0:
                planned.append(await self._plan(req.principal, symbol, delta, f"{key}:{symbol}"))
        if not req.dry_run:
            for order in planned:
                if order["state"] == "planned":
                    await self._send(req.principal, order)
        record = {
            "id": run_id,
            "principal": req.principal,
            "strategy": spec.name,
            "symbols": symbols,
            "params": params,
            "dry_run": req.dry_run,
            "mode": self.mode,
            "signals": signals,
            "orders": planned,
            "status": _status(planned, req.dry_run),
            "created_at": now,
        }
        await self.writer.insert("strategy_runs", record)
        return record, False

    async def _plan(self, principal: str, symbol: str, delta: Decimal, idempotency_key: str) -> dict[str, Any]:
        params = OrderParams(symbol=symbol, side="buy" if delta > 0 else "sell", type="market", qty=abs(delta))
        order: dict[str, Any] = {
            "symbol": symbol,
            "side": params.side,
            "qty": str(abs(delta)),
            "type": "market",
            "idempotency_key": idempotency_key,
            "state": "planned",
            "risk_checks": [],
        }
        request = build_request(params, "plan-only")
        try:
            checks = await self.router.check_risk(principal, request)
        except BusinessLogicError as refused:
            order.update(state="refused", error={"code": refused.code, "message": refused.message})
            return order
        order["risk_checks"] = [{"code": c.code, "passed": c.passed, "detail": c.detail} for c in checks]
        return order

    async def _send(self, principal: str, order: dict[str, Any]) -> None:
        params = OrderParams(symbol=order["symbol"], side=order["side"], type="market", qty=Decimal(order["qty"]))
        try:
            placed = await self.router.place(principal, params, order["idempotency_key"])
        except TradingError as error:
            order.update(state="failed", error={"code": error.code, "message": error.message})
            return
        order.update(
            state="submitted",
            order_id=placed.order.id,
            client_order_id=placed.order.client_order_id,
            status=placed.order.status,
            filled_qty=str(placed.order.filled_qty),
            filled_avg_price=None if placed.order.filled_avg_price is None else str(placed.order.filled_avg_price),
        )


def _status(planned: list[dict[str, Any]], dry_run: bool) -> str:
    if dry_run:
        return "planned"
    states = {o["state"] for o in planned}
    if not planned or states == {"submitted"}:
        return "executed"
    return "partial" if "submitted" in states else "failed"
