"""Run a strategy on the account: signal -> target position -> order, per symbol.

For each symbol:

1. Recent bars (``lookback_bars`` of ``timeframe``, enough for the strategy's indicators) from the
   market data source.
2. The strategy's signals on them (the same code a backtest runs). The position the strategy holds
   now is its last decided signal: +1 long, -1 short, 0 flat (a NaN signal means "no change", so
   the last non-NaN value counts). Stops that a backtest would apply inside a bar are not simulated
   here: only the signal.
3. Target quantity = direction x floor(budget / last close), whole shares, where
   budget = equity x ``capital_fraction`` / number of symbols. A short target is a short position
   (the paper broker sells short; see `nt_mcp.adapters.brokers.paper`).
4. The order = target - current position (none when equal). Each planned order carries every
   pre-trade risk check's result; one that fails refuses the order (its code in ``error``), and a
   refused order is not sent.

With ``dry_run`` the plan is returned and nothing is sent. Otherwise each order that passed goes
through `OrderRouter.place` with the idempotency key ``<run key>:<symbol>``. The run's status says
what happened: ``planned`` (dry run, all orders pass), ``executed`` (every order sent), ``partial``
(some orders refused or failed), ``refused`` (every order refused by a risk check), ``failed``
(none sent, some failed at the broker).

Idempotency (`nt_mcp.services.idempotency`): the run's row in ``strategy_runs`` (status
``running``, the request's fingerprint) is inserted FIRST; the same ``idempotency_key`` again
returns the recorded run (waiting while it is still running), and the key reused with other
arguments (strategy, symbols, params, capital_fraction, timeframe, lookback_bars, dry_run) is
refused with ``IDEMPOTENCY_KEY_REUSED``: a dry run and a real run never share a record. The
finished run is written through the spool if the database is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nt_mcp.adapters.brokers.base import client_order_id_for, tidy
from nt_mcp.adapters.data.market import MarketData
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.strategies import StrategySpec
from nt_mcp.errors import TradingError, ValidationError
from nt_mcp.infra.db import Database
from nt_mcp.infra.schema import strategy_runs
from nt_mcp.infra.spool import DurableWriter
from nt_mcp.services.idempotency import Backoff, check_same_request, fingerprint, in_use_error
from nt_mcp.services.order_router import OrderParams, OrderRouter, build_request, normalise_symbol, refusal

BAR_SECONDS = {"1Min": 60, "5Min": 300, "15Min": 900, "1Hour": 3600, "1Day": 86400}
RUNNING = "running"
RECORD_KEYS = ("id", "principal", "strategy", "symbols", "params", "dry_run", "mode", "created_at")


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
    capital_fraction: Decimal
    timeframe: str
    lookback_bars: int
    dry_run: bool
    idempotency_key: str | None


def run_fields(req: ExecutionRequest, symbols: list[str]) -> dict[str, Any]:
    """The canonical request a run's idempotency key stands for."""
    return {
        "strategy": req.strategy.name,
        "symbols": sorted(symbols),
        "params": req.params,
        "capital_fraction": str(tidy(req.capital_fraction)),
        "timeframe": req.timeframe,
        "lookback_bars": req.lookback_bars,
        "dry_run": req.dry_run,
    }


class StrategyExecutor:
    def __init__(
        self, db: Database, writer: DurableWriter, router: OrderRouter, market_data: MarketData, mode: str
    ) -> None:
        self.db = db
        self.writer = writer
        self.router = router
        self.market_data = market_data
        self.mode = mode
        self.claims = router.claims  # one set of claims per process

    async def _row(self, run_id: str) -> dict[str, Any] | None:
        async with self.db.connect() as conn:
            row = (await conn.execute(sa.select(strategy_runs).where(strategy_runs.c.id == run_id))).mappings().first()
        return dict(row) if row is not None else None

    async def _insert(self, record: dict[str, Any], fields: dict[str, Any], token: str) -> bool:
        now = datetime.now(UTC)
        values = record | {
            "request_fingerprint": fingerprint(fields),
            "request": fields,
            "claimed_by": token,
            "claimed_at": now,
        }

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(strategy_runs.insert().values(**values))

        try:
            await self.db.transaction(insert)
        except sa.exc.IntegrityError:
            return False
        return True

    async def _take_over(self, row: dict[str, Any], token: str) -> bool:
        old = row["claimed_by"]
        same = strategy_runs.c.claimed_by.is_(None) if old is None else strategy_runs.c.claimed_by == old

        async def update(conn: AsyncConnection) -> int:
            result = await conn.execute(
                strategy_runs.update()
                .where(strategy_runs.c.id == row["id"], strategy_runs.c.status == RUNNING, same)
                .values(claimed_by=token, claimed_at=datetime.now(UTC))
            )
            return int(result.rowcount or 0)

        return await self.db.transaction(update) == 1

    async def _forget(self, run_id: str, token: str) -> None:
        """Delete a run that failed before sending anything (bad input): nothing is recorded."""

        async def delete(conn: AsyncConnection) -> None:
            await conn.execute(
                strategy_runs.delete().where(
                    strategy_runs.c.id == run_id,
                    strategy_runs.c.claimed_by == token,
                    strategy_runs.c.status == RUNNING,
                )
            )

        with contextlib.suppress(TradingError, sa.exc.SQLAlchemyError):
            await self.db.transaction(delete)

    async def execute(self, req: ExecutionRequest) -> tuple[dict[str, Any], bool]:
        """The run record (see ``strategy_runs``) and whether it is a replay of an earlier run."""
        symbols = [normalise_symbol(s, "symbols") for s in req.symbols]
        if len(set(symbols)) != len(symbols):
            raise ValidationError("symbols lists a symbol twice.", argument="symbols")
        key = req.idempotency_key or uuid.uuid4().hex
        run_id = "run-" + hashlib.sha256(f"{req.principal}:{key}".encode()).hexdigest()[:24]
        fields = run_fields(req, symbols)
        record: dict[str, Any] = {
            "id": run_id,
            "principal": req.principal,
            "strategy": req.strategy.name,
            "symbols": symbols,
            "params": req.params,
            "dry_run": req.dry_run,
            "mode": self.mode,
            "signals": {},
            "orders": [],
            "status": RUNNING,
            "created_at": datetime.now(UTC),
        }
        backoff = Backoff(self.router.wait_s)
        while True:
            token = self.claims.new_token()
            with self.claims.hold(token):
                if await self._insert(record, fields, token):
                    return await self._run(record, req, symbols, key, token), False
                row = await self._row(run_id)
                if row is not None:
                    recorded = row["request"] or {
                        "symbols": sorted(row["symbols"]),
                        "params": row["params"],
                        "dry_run": row["dry_run"],
                    }  # a run recorded before revision 0003
                    check_same_request(recorded, {k: v for k, v in fields.items() if k in recorded}, "strategy run")
                    if row["status"] != RUNNING:
                        return row, True
                    owner_gone = self.claims.abandoned(row["claimed_by"], _aware(row["claimed_at"]), datetime.now(UTC))
                    if owner_gone and await self._take_over(row, token):
                        return await self._run(row, req, symbols, key, token), False
            delay = backoff.next_delay()
            if delay is None:
                raise in_use_error("strategy run", backoff.waited_s)
            await asyncio.sleep(delay)

    async def _run(
        self, record: dict[str, Any], req: ExecutionRequest, symbols: list[str], key: str, token: str
    ) -> dict[str, Any]:
        """This call holds the run: plan, send (unless a dry run), record the outcome."""
        try:
            signals, planned = await self._plan_all(req, symbols, key)
        except Exception:
            await self._forget(record["id"], token)  # nothing was sent
            raise
        if not req.dry_run:
            for order in planned:
                if order["state"] == "planned":
                    await self._send(req.principal, order)
        outcome = {"signals": signals, "orders": planned, "status": _status(planned, req.dry_run)}
        await self.writer.update("strategy_runs", key={"id": record["id"]}, values=outcome | {"claimed_by": None})
        return {k: record[k] for k in RECORD_KEYS} | outcome

    async def _plan_all(
        self, req: ExecutionRequest, symbols: list[str], key: str
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        spec, params = req.strategy, req.params
        account = await self.router.broker.get_account(req.principal)
        held = {p.symbol: p.qty for p in await self.router.broker.get_positions(req.principal)}
        budget = account.equity * req.capital_fraction / len(symbols)
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
        return signals, planned

    async def _plan(self, principal: str, symbol: str, delta: Decimal, idempotency_key: str) -> dict[str, Any]:
        """One order of the plan with every risk check's result; ``refused`` (and why) when one failed."""
        params = OrderParams(symbol=symbol, side="buy" if delta > 0 else "sell", type="market", qty=abs(delta))
        request = build_request(params, client_order_id_for(principal, idempotency_key))
        results = await self.router.evaluate_risk(principal, request)
        order: dict[str, Any] = {
            "symbol": symbol,
            "side": params.side,
            "qty": str(abs(delta)),
            "type": "market",
            "idempotency_key": idempotency_key,
            "state": "planned",
            "risk_checks": [{"code": c.code, "passed": c.passed, "detail": c.detail} for c in results],
        }
        failed = next((c for c in results if not c.passed), None)
        if failed is not None:
            refused = refusal(failed)
            order.update(state="refused", error={"code": refused.code, "message": refused.message})
        return order

    async def _send(self, principal: str, order: dict[str, Any]) -> None:
        params = OrderParams(symbol=order["symbol"], side=order["side"], type="market", qty=Decimal(order["qty"]))
        try:
            placed = await self.router.place(principal, params, order["idempotency_key"])
        except TradingError as error:
            order.update(state="failed", error={"code": error.code, "message": error.message})
            return
        if placed.checks:
            order["risk_checks"] = [{"code": c.code, "passed": c.passed, "detail": c.detail} for c in placed.checks]
        order.update(
            state="submitted",
            order_id=placed.order.id,
            client_order_id=placed.order.client_order_id,
            status=placed.order.status,
            filled_qty=str(placed.order.filled_qty),
            filled_avg_price=None if placed.order.filled_avg_price is None else str(placed.order.filled_avg_price),
            notes=placed.order.notes,
        )


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def _status(planned: list[dict[str, Any]], dry_run: bool) -> str:
    """planned / executed when every order went through (or none was needed); partial when some did
    and some were refused or failed; refused when every order was refused by a risk check; failed
    when none was sent and at least one failed at the broker."""
    states = [o["state"] for o in planned]
    done = "planned" if dry_run else "submitted"
    went_through = states.count(done)
    if went_through == len(states):
        return "planned" if dry_run else "executed"
    if went_through:
        return "partial"
    return "failed" if "failed" in states else "refused"
