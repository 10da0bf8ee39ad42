"""`OrderRouter`: the one way an order reaches a broker. Validate, check the risk limits, journal,
send, and never send twice.

Never twice:

1. The caller's ``idempotency_key`` (a fresh uuid4 when none is given, returned with the result)
   becomes ``client_order_id = "nt-" + sha256(principal + ":" + idempotency_key)[:24]``.
2. A journal row in ``orders`` (status ``pending_submit``) is written *before* the broker is called.
   The ``client_order_id`` column is unique, so two concurrent calls with one key cannot both pass.
3. After the broker call the row takes the broker's id and status. When the outcome is unknown
   (timeout, connection lost, 5xx) the order is looked up by client_order_id, never sent again:
   found -> that is the order; not found -> the row becomes ``submit_failed`` and the error says to
   retry; lookup impossible -> the row stays ``pending_submit`` and the error says the same.
4. Calling again with the same key returns the first order (refreshed from the broker); a row
   left ``pending_submit``/``submit_failed`` is first looked up by client_order_id and only sent
   (with the same client_order_id, which the broker itself refuses to duplicate) if the broker has
   never seen it. Re-using a key for a different order is a validation error.
"""

from __future__ import annotations

import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nt_mcp.adapters.brokers.base import (
    BracketLeg,
    Broker,
    Order,
    OrderRequest,
    client_order_id_for,
    new_idempotency_key,
)
from nt_mcp.adapters.brokers.paper import NEW_YORK, ny_trading_date
from nt_mcp.domain import risk_limits
from nt_mcp.domain.risk_limits import AccountSnapshot, CheckResult, OrderIntent, RiskCheckFailed, RiskLimits
from nt_mcp.errors import (
    BusinessLogicError,
    DatabaseError,
    ExternalAPIError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    TradingError,
    ValidationError,
)
from nt_mcp.infra.db import Database
from nt_mcp.infra.schema import orders
from nt_mcp.infra.spool import DurableWriter

SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{0,9}([./][A-Z0-9]{1,5})?$")
UNSETTLED = ("pending_submit", "submit_failed")
NOT_PLACED = ("rejected", "submit_failed")


def normalise_symbol(symbol: str, argument: str = "symbol") -> str:
    value = symbol.strip().upper()
    if not SYMBOL_PATTERN.match(value):
        raise ValidationError(
            f"{symbol!r} is not a ticker symbol (letters and digits, e.g. AAPL or BRK.B).", argument=argument
        )
    return value


def _positive(value: Decimal | float | None, argument: str) -> Decimal | None:
    if value is None:
        return None
    number = Decimal(str(value))
    if not number.is_finite() or (isinstance(value, float) and not math.isfinite(value)):
        raise ValidationError(f"{argument} must be a finite number.", argument=argument)
    if number <= 0:
        raise ValidationError(f"{argument} must be greater than zero, got {number}.", argument=argument)
    return number


@dataclass(frozen=True)
class OrderParams:
    """An order as the caller asked for it, before validation."""

    symbol: str
    side: str
    type: str = "market"
    qty: Decimal | float | None = None
    notional: Decimal | float | None = None
    time_in_force: str = "day"
    limit_price: Decimal | float | None = None
    stop_price: Decimal | float | None = None
    trail_percent: Decimal | float | None = None
    take_profit_limit_price: Decimal | float | None = None
    stop_loss_stop_price: Decimal | float | None = None
    stop_loss_limit_price: Decimal | float | None = None


def build_request(params: OrderParams, client_order_id: str) -> OrderRequest:
    """Validate ``params``; every failure names its argument and nothing is sent."""
    symbol = normalise_symbol(params.symbol)
    if params.side not in ("buy", "sell"):
        raise ValidationError("side must be 'buy' or 'sell'.", argument="side")
    qty = _positive(params.qty, "qty")
    notional = _positive(params.notional, "notional")
    if (qty is None) == (notional is None):
        raise ValidationError("Give exactly one of qty and notional.", argument="qty")
    limit = _positive(params.limit_price, "limit_price")
    stop = _positive(params.stop_price, "stop_price")
    trail = _positive(params.trail_percent, "trail_percent")
    kind = params.type
    needs = {
        "market": (),
        "limit": ("limit_price",),
        "stop": ("stop_price",),
        "stop_limit": ("stop_price", "limit_price"),
        "trailing_stop": ("trail_percent",),
    }
    if kind not in needs:
        raise ValidationError(f"type must be one of {', '.join(needs)}.", argument="type")
    given = {"limit_price": limit, "stop_price": stop, "trail_percent": trail}
    for name, value in given.items():
        if name in needs[kind] and value is None:
            raise ValidationError(f"A {kind} order needs {name}.", argument=name)
        if name not in needs[kind] and value is not None:
            raise ValidationError(f"A {kind} order takes no {name}.", argument=name)
    if trail is not None and trail >= 100:
        raise ValidationError("trail_percent must be below 100.", argument="trail_percent")
    if notional is not None and (kind != "market" or params.time_in_force != "day"):
        raise ValidationError("notional is only for market orders with time_in_force day.", argument="notional")
    take_profit = _positive(params.take_profit_limit_price, "take_profit")
    stop_loss = _positive(params.stop_loss_stop_price, "stop_loss")
    stop_loss_limit = _positive(params.stop_loss_limit_price, "stop_loss")
    tp_leg = sl_leg = None
    if take_profit is not None or stop_loss is not None:
        if take_profit is None or stop_loss is None:
            raise ValidationError(
                "A bracket order needs both take_profit and stop_loss.",
                argument="take_profit" if take_profit is None else "stop_loss",
            )
        if kind not in ("market", "limit") or params.time_in_force not in ("day", "gtc"):
            raise ValidationError(
                "A bracket order is a market or limit order with time_in_force day or gtc.", argument="type"
            )
        low, high = (stop_loss, take_profit) if params.side == "buy" else (take_profit, stop_loss)
        if not low < high:
            raise ValidationError(
                "For a buy, take_profit must be above stop_loss (for a sell, below).", argument="take_profit"
            )
        tp_leg = BracketLeg(limit_price=take_profit)
        sl_leg = BracketLeg(stop_price=stop_loss, limit_price=stop_loss_limit)
    if params.time_in_force not in ("day", "gtc", "opg", "cls", "ioc", "fok"):
        raise ValidationError("time_in_force must be day, gtc, opg, cls, ioc or fok.", argument="time_in_force")
    return OrderRequest(
        symbol=symbol,
        side=params.side,  # type: ignore[arg-type]
        type=kind,  # type: ignore[arg-type]
        time_in_force=params.time_in_force,  # type: ignore[arg-type]
        client_order_id=client_order_id,
        qty=qty,
        notional=notional,
        limit_price=limit,
        stop_price=stop,
        trail_percent=trail,
        take_profit=tp_leg,
        stop_loss=sl_leg,
    )


@dataclass(frozen=True)
class Placed:
    order: Order
    idempotency_key: str
    checks: list[CheckResult]
    replayed: bool  # True: this key was used before and this is that first order


class OrderRouter:
    def __init__(self, db: Database, broker: Broker, limits: RiskLimits, mode: str, writer: DurableWriter) -> None:
        self.db = db
        self.writer = writer
        self.broker = broker
        self.limits = limits
        self.mode = mode

    # ---- journal ----

    @staticmethod
    def orders_since_query(principal: str, since: datetime) -> sa.Select[Any]:
        """Orders a principal placed since ``since`` (index ix_orders_principal_created)."""
        return (
            sa.select(sa.func.count())
            .select_from(orders)
            .where(
                orders.c.principal == principal,
                orders.c.created_at >= since,
                orders.c.status.not_in(NOT_PLACED),
            )
        )

    async def orders_today(self, principal: str, now: datetime) -> int:
        start = datetime.combine(ny_trading_date(now), time(0), NEW_YORK)
        async with self.db.connect() as conn:
            return int((await conn.execute(self.orders_since_query(principal, start))).scalar_one())

    async def _journal_row(self, client_order_id: str) -> Any:
        async with self.db.connect() as conn:
            result = await conn.execute(sa.select(orders).where(orders.c.client_order_id == client_order_id))
            return result.mappings().first()

    async def _reserve(self, principal: str, request: OrderRequest) -> bool:
        """Write the pending_submit row; False when a row with this client_order_id already exists."""
        now = datetime.now(UTC)

        async def insert(conn: AsyncConnection) -> None:
            await conn.execute(
                orders.insert().values(
                    id=uuid.uuid4().hex,
                    client_order_id=request.client_order_id,
                    principal=principal,
                    broker=self.broker.name,
                    mode=self.mode,
                    symbol=request.symbol,
                    side=request.side,
                    order_type=request.type,
                    time_in_force=request.time_in_force,
                    qty=request.qty,
                    notional=request.notional,
                    limit_price=request.limit_price,
                    stop_price=request.stop_price,
                    trail_percent=request.trail_percent,
                    status="pending_submit",
                    details=_request_details(request),
                    created_at=now,
                    updated_at=now,
                )
            )

        try:
            await self.db.transaction(insert)
        except sa.exc.IntegrityError:
            return False
        return True

    async def _record(self, client_order_id: str, order: Order) -> None:
        """Journal what the broker said. The order exists at the broker now, so this update must not be
        lost: while the database is unreachable it waits in the spool and is replayed in order."""
        await self.writer.update(
            "orders",
            key={"client_order_id": client_order_id},
            values={
                "broker_order_id": order.id,
                "status": order.status,
                "filled_qty": order.filled_qty,
                "filled_avg_price": order.filled_avg_price,
                "updated_at": datetime.now(UTC),
                "error": order.reject_reason,
            },
        )

    async def _mark(self, client_order_id: str, status: str, error: str) -> None:
        async def update(conn: AsyncConnection) -> None:
            await conn.execute(
                orders.update()
                .where(orders.c.client_order_id == client_order_id, orders.c.status.in_(UNSETTLED))
                .values(status=status, error=error[:2000], updated_at=datetime.now(UTC))
            )

        await self.db.transaction(update)

    # ---- risk ----

    async def risk_snapshot(self, principal: str) -> AccountSnapshot:
        account = await self.broker.get_account(principal)
        positions = await self.broker.get_positions(principal)
        clock = await self.broker.get_clock() if self.limits.enforce_market_hours else None
        return AccountSnapshot(
            equity=account.equity,
            day_start_equity=account.day_start_equity,
            positions={p.symbol: p.qty for p in positions},
            orders_today=await self.orders_today(principal, datetime.now(UTC)),
            market_open=clock.is_open if clock is not None else True,
        )

    async def check_risk(self, principal: str, request: OrderRequest) -> list[CheckResult]:
        """Run the risk checks for ``request``; raises `BusinessLogicError` with the failing code."""
        quote = await self.broker.latest_quote(request.symbol)
        market_price = quote.ask if request.side == "buy" and quote.ask else quote.price
        reference = request.limit_price or request.stop_price or market_price
        qty = request.qty if request.qty is not None else (request.notional or Decimal(0)) / reference
        intent = OrderIntent(request.symbol, request.side, qty, reference, request.type)
        try:
            return risk_limits.enforce(self.limits, intent, await self.risk_snapshot(principal))
        except RiskCheckFailed as failed:
            raise BusinessLogicError(
                f"Order refused by risk check {failed.result.code}: {failed.result.detail}.",
                code=failed.result.code,
                context={"check": failed.result.code},
            ) from None

    # ---- placing ----

    async def place(self, principal: str, params: OrderParams, idempotency_key: str | None) -> Placed:
        key = idempotency_key or new_idempotency_key()
        request = build_request(params, client_order_id_for(principal, key))
        existing = await self._journal_row(request.client_order_id)
        if existing is not None:
            _check_same_order(existing, request)
            if existing["status"] == "rejected":
                raise BusinessLogicError(
                    f"The order of this idempotency_key was rejected: {existing['error']}",
                    code="ORDER_REJECTED",
                )
            if existing["status"] not in UNSETTLED:
                return Placed(await self._refresh(principal, existing), key, [], replayed=True)
            try:
                order = await self.broker.get_order_by_client_id(principal, request.client_order_id)
            except NotFoundError:
                pass  # the broker never saw it: it may be sent, with the same client_order_id
            else:
                await self._record(request.client_order_id, order)
                return Placed(order, key, [], replayed=True)
        await self.broker.check_symbol(request.symbol)
        checks = await self.check_risk(principal, request)
        if existing is None and not await self._reserve(principal, request):
            return await self.place(principal, params, key)  # a concurrent call reserved it first
        return Placed(await self._submit(principal, request), key, checks, replayed=False)

    async def _refresh(self, principal: str, row: Any) -> Order:
        try:
            order = await self.broker.get_order_by_client_id(principal, row["client_order_id"])
        except NotFoundError:
            raise NotFoundError(
                f"The broker no longer knows order {row['client_order_id']}.",
                context={"client_order_id": row["client_order_id"]},
            ) from None
        if order.status != row["status"]:
            await self._record(row["client_order_id"], order)
        return order

    async def _submit(self, principal: str, request: OrderRequest) -> Order:
        coid = request.client_order_id
        try:
            order = await self.broker.submit_order(principal, request)
        except (ValidationError, BusinessLogicError, NotFoundError) as error:
            await self._mark(coid, "rejected", error.message)
            raise
        except RateLimitError as error:
            await self._mark(coid, "submit_failed", error.message)
            raise
        except (NetworkError, ExternalAPIError, DatabaseError) as error:
            order = await self._resolve_unknown(principal, coid, error)
        await self._record(coid, order)
        return order

    async def _resolve_unknown(self, principal: str, coid: str, error: TradingError) -> Order:
        """The broker may or may not have the order: look it up by client_order_id, never resend."""
        try:
            return await self.broker.get_order_by_client_id(principal, coid)
        except NotFoundError:
            await self._mark(coid, "submit_failed", error.message)
            raise ExternalAPIError(
                f"The order was not placed ({error.message}). Call place_order again with the same "
                "idempotency_key to retry safely.",
                service=self.broker.name,
                retryable=True,
                retry_after_s=error.retry_after_s,
            ) from error
        except TradingError:
            raise ExternalAPIError(
                f"The order's outcome is unknown ({error.message}) and the broker cannot be asked now. "
                "Call place_order again with the same idempotency_key: it will be looked up, not resent.",
                service=self.broker.name,
                retryable=True,
                retry_after_s=error.retry_after_s,
            ) from error

    async def close_position(
        self,
        principal: str,
        symbol: str,
        qty: Decimal | None,
        percentage: Decimal | None,
        idempotency_key: str | None,
    ) -> Placed:
        """Sell (or buy back) ``qty`` or ``percentage`` of the position, all of it by default, as a
        market order through `place` (so it is journaled and idempotent like any order)."""
        symbol = normalise_symbol(symbol)
        if qty is not None and percentage is not None:
            raise ValidationError("Give qty or percentage, not both.", argument="percentage")
        _positive(qty, "qty")
        if percentage is not None and not (0 < percentage <= 100):
            raise ValidationError("percentage must be in (0, 100].", argument="percentage")
        if idempotency_key is not None:
            existing = await self._journal_row(client_order_id_for(principal, idempotency_key))
            if existing is not None and existing["status"] not in UNSETTLED:
                return Placed(await self._refresh(principal, existing), idempotency_key, [], replayed=True)
        positions = {p.symbol: p for p in await self.broker.get_positions(principal)}
        position = positions.get(symbol)
        if position is None or position.qty == 0:
            raise NotFoundError(f"There is no open {symbol} position.", context={"symbol": symbol})
        held = abs(position.qty)
        amount = qty if qty is not None else held * (percentage or Decimal(100)) / 100
        if amount > held:
            raise ValidationError(f"qty {amount} is more than the {held} held.", argument="qty")
        side = "sell" if position.qty > 0 else "buy"
        params = OrderParams(symbol=symbol, side=side, type="market", qty=amount.normalize())
        return await self.place(principal, params, idempotency_key)


def _request_details(request: OrderRequest) -> dict[str, Any]:
    details: dict[str, Any] = {"order_class": request.order_class}
    if request.take_profit is not None:
        details["take_profit"] = str(request.take_profit.limit_price)
    if request.stop_loss is not None:
        details["stop_loss"] = str(request.stop_loss.stop_price)
        if request.stop_loss.limit_price is not None:
            details["stop_loss_limit"] = str(request.stop_loss.limit_price)
    return details


def _check_same_order(row: Any, request: OrderRequest) -> None:
    def same(a: Any, b: Decimal | None) -> bool:
        return (a is None and b is None) or (a is not None and b is not None and Decimal(str(a)) == b)

    if (
        row["symbol"] != request.symbol
        or row["side"] != request.side
        or row["order_type"] != request.type
        or not same(row["limit_price"], request.limit_price)
        or not same(row["stop_price"], request.stop_price)
        or (request.qty is not None and row["status"] in UNSETTLED and not same(row["qty"], request.qty))
    ):
        raise ValidationError(
            "This idempotency_key was already used for a different order; use a new key.",
            argument="idempotency_key",
        )
