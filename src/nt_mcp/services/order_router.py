"""`OrderRouter`: the one way an order reaches a broker. Validate, journal, check the risk limits,
send, and never send twice.

Never twice (see also `nt_mcp.services.idempotency`):

1. The caller's ``idempotency_key`` (a fresh uuid4 when none is given, returned with the result)
   becomes ``client_order_id = "nt-" + sha256(principal + ":" + idempotency_key)[:24]``.
2. The journal row in ``orders`` (status ``pending_submit``, the request's fingerprint, and a claim
   naming this call) is INSERTED FIRST. ``client_order_id`` is unique, so of any number of
   concurrent calls with one key exactly one inserts it; that call alone checks the risk limits and
   calls the broker. The others read the row: a different request is ``IDEMPOTENCY_KEY_REUSED``;
   the same request waits (bounded) for the first call to settle and gets its order with
   ``replayed=true``, or ``IDEMPOTENCY_KEY_IN_USE`` (retryable) when the wait runs out.
3. A refusal before sending (bad symbol, a risk check) deletes the row: nothing was sent and the
   key is free again. After the broker call the row takes the broker's id and status. When the
   outcome is unknown (timeout, connection lost, 5xx, the database gone) the order is looked up by
   client_order_id, never sent again: found -> that is the order; not found -> the row becomes
   ``submit_failed`` and the error says to retry with the same key; lookup impossible -> the row
   stays ``pending_submit`` and the error says the same (``DATABASE_ERROR`` when the database is
   what failed).
4. A row left ``submit_failed``, or ``pending_submit`` by a call that is gone, is taken over by one
   later call with the same key (a compare-and-set on the claim): it looks the order up by
   client_order_id first and sends only if the broker has never seen it (with the same
   client_order_id, which the broker itself refuses to duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
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
    tidy,
)
from nt_mcp.adapters.brokers.paper import NEW_YORK, ny_trading_date, order_from_row
from nt_mcp.domain import risk_limits
from nt_mcp.domain.risk_limits import AccountSnapshot, CheckResult, OrderIntent, RiskLimits
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
from nt_mcp.services.idempotency import Backoff, Claims, check_same_request, fingerprint, in_use_error

SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{0,9}([./][A-Z0-9]{1,5})?$")
UNSETTLED = ("pending_submit", "submit_failed")
NOT_PLACED = ("rejected", "submit_failed")
RETRY_HINT = "Call place_order again with the same idempotency_key"


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


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(tidy(value))


def order_fields(request: OrderRequest) -> dict[str, Any]:
    """The canonical request an idempotency key of place_order stands for (decimals as plain strings)."""
    take_profit, stop_loss = request.take_profit, request.stop_loss
    return {
        "tool": "place_order",
        "symbol": request.symbol,
        "side": request.side,
        "type": request.type,
        "qty": _text(request.qty),
        "notional": _text(request.notional),
        "limit_price": _text(request.limit_price),
        "stop_price": _text(request.stop_price),
        "trail_percent": _text(request.trail_percent),
        "time_in_force": request.time_in_force,
        "take_profit": _text(take_profit.limit_price) if take_profit else None,
        "stop_loss": _text(stop_loss.stop_price) if stop_loss else None,
        "stop_loss_limit": _text(stop_loss.limit_price) if stop_loss else None,
    }


def _recorded_request(row: Any, requested: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the row's key was first used for, and the part of ``requested`` to compare with it. A row
    written before revision 0003 has no recorded request: its columns that a fill never changes stand in."""
    if row["request"] is not None:
        return dict(row["request"]), requested
    legacy = {
        "symbol": row["symbol"],
        "side": row["side"],
        "type": row["order_type"],
        "limit_price": _text(Decimal(str(row["limit_price"]))) if row["limit_price"] is not None else None,
        "stop_price": _text(Decimal(str(row["stop_price"]))) if row["stop_price"] is not None else None,
    }
    shared = [k for k in legacy if k in requested]
    return {k: legacy[k] for k in shared}, {k: requested[k] for k in shared}


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Placed:
    order: Order
    idempotency_key: str
    checks: list[CheckResult]
    replayed: bool  # True: this key was used before and this is that first order


class OrderRouter:
    def __init__(
        self,
        db: Database,
        broker: Broker,
        limits: RiskLimits,
        mode: str,
        writer: DurableWriter,
        *,
        wait_s: float = 30.0,
        lease_s: float = 150.0,
    ) -> None:
        """``wait_s``: how long a call waits for another call with the same key to settle the order;
        ``lease_s``: after how long another process's claim on an unsettled order counts as abandoned."""
        self.db = db
        self.writer = writer
        self.broker = broker
        self.limits = limits
        self.mode = mode
        self.wait_s = wait_s
        self.claims = Claims(lease_s)

    # ---- journal ----

    @staticmethod
    def orders_since_query(principal: str, since: datetime, exclude: str | None = None) -> sa.Select[Any]:
        """Orders a principal placed since ``since``, but ``exclude`` (a client_order_id)
        (index ix_orders_principal_created)."""
        query = (
            sa.select(sa.func.count())
            .select_from(orders)
            .where(
                orders.c.principal == principal,
                orders.c.created_at >= since,
                orders.c.status.not_in(NOT_PLACED),
            )
        )
        return query if exclude is None else query.where(orders.c.client_order_id != exclude)

    async def orders_today(self, principal: str, now: datetime, exclude: str | None = None) -> int:
        start = datetime.combine(ny_trading_date(now), time(0), NEW_YORK)
        async with self.db.connect() as conn:
            return int((await conn.execute(self.orders_since_query(principal, start, exclude))).scalar_one())

    async def _journal_row(self, client_order_id: str) -> Any:
        async with self.db.connect() as conn:
            result = await conn.execute(sa.select(orders).where(orders.c.client_order_id == client_order_id))
            return result.mappings().first()

    async def _insert(self, principal: str, request: OrderRequest, fields: dict[str, Any], token: str) -> bool:
        """Insert the pending_submit row claimed by ``token``; False when the key's row exists already."""
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
                    request_fingerprint=fingerprint(fields),
                    request=fields,
                    claimed_by=token,
                    claimed_at=now,
                    created_at=now,
                    updated_at=now,
                )
            )

        try:
            await self.db.transaction(insert)
        except sa.exc.IntegrityError:
            return False
        return True

    async def _take_over(self, row: Any, token: str) -> bool:
        """Claim an unsettled row whose owner is gone (compare-and-set on the old claim)."""
        now = datetime.now(UTC)
        old = row["claimed_by"]
        same_claim = orders.c.claimed_by.is_(None) if old is None else orders.c.claimed_by == old

        async def update(conn: AsyncConnection) -> int:
            result = await conn.execute(
                orders.update()
                .where(orders.c.client_order_id == row["client_order_id"], orders.c.status.in_(UNSETTLED), same_claim)
                .values(status="pending_submit", claimed_by=token, claimed_at=now, updated_at=now)
            )
            return int(result.rowcount or 0)

        return await self.db.transaction(update) == 1

    async def _forget(self, client_order_id: str, token: str) -> None:
        """Delete the row of an order refused before it was sent: the key is free again. Best effort:
        when the database cannot be reached the row stays, claimed by a call that is over, and the
        next call with the key takes it over."""

        async def delete(conn: AsyncConnection) -> None:
            await conn.execute(
                orders.delete().where(
                    orders.c.client_order_id == client_order_id,
                    orders.c.claimed_by == token,
                    orders.c.status == "pending_submit",
                )
            )

        with contextlib.suppress(TradingError, sa.exc.SQLAlchemyError):
            await self.db.transaction(delete)

    async def _release(self, client_order_id: str, token: str) -> None:
        """Give up the claim (best effort) so the next call with the key may take the row over."""

        async def update(conn: AsyncConnection) -> None:
            await conn.execute(
                orders.update()
                .where(orders.c.client_order_id == client_order_id, orders.c.claimed_by == token)
                .values(claimed_by=None)
            )

        with contextlib.suppress(TradingError, sa.exc.SQLAlchemyError):
            await self.db.transaction(update)

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
                "claimed_by": None,
            },
        )

    async def _mark(self, client_order_id: str, status: str, error: str) -> None:
        async def update(conn: AsyncConnection) -> None:
            await conn.execute(
                orders.update()
                .where(orders.c.client_order_id == client_order_id, orders.c.status.in_(UNSETTLED))
                .values(status=status, error=error[:2000], updated_at=datetime.now(UTC), claimed_by=None)
            )

        with contextlib.suppress(TradingError, sa.exc.SQLAlchemyError):  # unrecorded: the next call looks it up
            await self.db.transaction(update)

    async def find_order(self, principal: str, client_order_id: str) -> Order:
        """The order of ``client_order_id`` as the broker has it; an order the broker has not got (yet)
        is shown from the journal, e.g. ``pending_submit`` while its outcome is being resolved."""
        try:
            return await self.broker.get_order_by_client_id(principal, client_order_id)
        except NotFoundError:
            row = await self._journal_row(client_order_id)
            if row is None or row["principal"] != principal:
                raise
            return order_from_row(row)

    # ---- risk ----

    async def risk_snapshot(self, principal: str, exclude: str | None = None) -> AccountSnapshot:
        """The account as the risk checks see it; ``exclude``: the order being checked (its own
        journal row does not count towards the orders placed today)."""
        account = await self.broker.get_account(principal)
        positions = await self.broker.get_positions(principal)
        clock = await self.broker.get_clock() if self.limits.enforce_market_hours else None
        return AccountSnapshot(
            equity=account.equity,
            day_start_equity=account.day_start_equity,
            positions={p.symbol: p.qty for p in positions},
            orders_today=await self.orders_today(principal, datetime.now(UTC), exclude),
            market_open=clock.is_open if clock is not None else True,
        )

    async def evaluate_risk(self, principal: str, request: OrderRequest) -> list[CheckResult]:
        """Every risk check's result for ``request`` (passed or not), in a fixed order."""
        quote = await self.broker.latest_quote(request.symbol)
        market_price = quote.ask if request.side == "buy" and quote.ask else quote.price
        reference = request.limit_price or request.stop_price or market_price
        qty = request.qty if request.qty is not None else (request.notional or Decimal(0)) / reference
        intent = OrderIntent(request.symbol, request.side, qty, reference, request.type)
        snapshot = await self.risk_snapshot(principal, request.client_order_id)
        return risk_limits.evaluate(self.limits, intent, snapshot)

    async def check_risk(self, principal: str, request: OrderRequest) -> list[CheckResult]:
        """The risk checks ``request`` passed; raises `BusinessLogicError` with the first failing code."""
        results = await self.evaluate_risk(principal, request)
        for result in results:
            if not result.passed:
                raise refusal(result)
        return results

    # ---- placing ----

    async def place(self, principal: str, params: OrderParams, idempotency_key: str | None) -> Placed:
        key = idempotency_key or new_idempotency_key()
        request = build_request(params, client_order_id_for(principal, key))
        return await self._place(principal, request, key, order_fields(request))

    async def _place(self, principal: str, request: OrderRequest, key: str, fields: dict[str, Any]) -> Placed:
        try:
            return await self._place_or_wait(principal, request, key, fields)
        except DatabaseError as error:
            if "retry" in error.context:
                raise
            raise DatabaseError(
                f"{error.message} {RETRY_HINT} once it is back: the order is looked up, never sent twice.",
                retry_after_s=1.0,
                context={"retry": "same idempotency_key"},
            ) from error

    async def _place_or_wait(self, principal: str, request: OrderRequest, key: str, fields: dict[str, Any]) -> Placed:
        """Insert the journal row and send; or, when the key's row exists, replay, refuse or wait."""
        backoff = Backoff(self.wait_s)
        while True:
            token = self.claims.new_token()
            with self.claims.hold(token):
                if await self._insert(principal, request, fields, token):
                    return await self._send_claimed(principal, request, key, token, taken_over=False)
                row = await self._journal_row(request.client_order_id)
                if row is not None:
                    recorded, requested = _recorded_request(row, fields)
                    check_same_request(recorded, requested, "order")
                    if row["status"] == "rejected":
                        raise BusinessLogicError(
                            f"The order of this idempotency_key was rejected: {row['error']}", code="ORDER_REJECTED"
                        )
                    if row["status"] not in UNSETTLED:
                        return Placed(await self._refresh(principal, row), key, [], replayed=True)
                    owner_gone = self.claims.abandoned(row["claimed_by"], _aware(row["claimed_at"]), datetime.now(UTC))
                    if owner_gone and await self._take_over(row, token):
                        return await self._send_claimed(principal, request, key, token, taken_over=True)
            delay = backoff.next_delay()
            if delay is None:
                raise in_use_error("order", backoff.waited_s)
            await asyncio.sleep(delay)

    async def _send_claimed(
        self, principal: str, request: OrderRequest, key: str, token: str, *, taken_over: bool
    ) -> Placed:
        """This call holds the key's row: (look the order up,) check the risk limits, send once."""
        coid = request.client_order_id
        if taken_over:  # an earlier call may have reached the broker: look it up, never resend
            try:
                order = await self.broker.get_order_by_client_id(principal, coid)
            except NotFoundError:
                pass
            except Exception:
                await self._release(coid, token)
                raise
            else:
                await self._record(coid, order)
                return Placed(order, key, [], replayed=True)
        try:
            await self.broker.check_symbol(request.symbol)
            checks = await self.check_risk(principal, request)
        except Exception:
            await self._forget(coid, token)  # nothing was sent
            raise
        return Placed(await self._submit(principal, request, token), key, checks, replayed=False)

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

    async def _submit(self, principal: str, request: OrderRequest, token: str) -> Order:
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
            order = await self._resolve_unknown(principal, coid, token, error)
        await self._record(coid, order)
        return order

    async def _resolve_unknown(self, principal: str, coid: str, token: str, error: TradingError) -> Order:
        """The broker may or may not have the order: look it up by client_order_id, never resend."""
        try:
            return await self.broker.get_order_by_client_id(principal, coid)
        except NotFoundError:
            await self._mark(coid, "submit_failed", error.message)
            raise self._retryable(
                f"The order was not placed ({error.message}). {RETRY_HINT} to retry safely.", error
            ) from error
        except TradingError as lookup:
            await self._release(coid, token)
            raise self._retryable(
                f"The order's outcome is unknown ({error.message}) and cannot be looked up now. "
                f"{RETRY_HINT}: it will be looked up, not resent.",
                error,
                lookup,
            ) from error

    def _retryable(self, message: str, error: TradingError, *more: TradingError) -> TradingError:
        """DATABASE_ERROR when the database is what failed, else EXTERNAL_API_ERROR; both retryable."""
        if any(isinstance(e, DatabaseError) for e in (error, *more)):
            return DatabaseError(message, retry_after_s=1.0, context={"retry": "same idempotency_key"})
        return ExternalAPIError(message, service=self.broker.name, retryable=True, retry_after_s=error.retry_after_s)

    async def close_position(
        self,
        principal: str,
        symbol: str,
        qty: Decimal | None,
        percentage: Decimal | None,
        idempotency_key: str | None,
    ) -> Placed:
        """Sell (or buy back) ``qty`` or ``percentage`` of the position, all of it by default, as a
        market order through the same journal as `place` (idempotent like any order; the key stands
        for this close request, and a retry of an unsettled close re-sends the same quantity)."""
        symbol = normalise_symbol(symbol)
        if qty is not None and percentage is not None:
            raise ValidationError("Give qty or percentage, not both.", argument="percentage")
        _positive(qty, "qty")
        if percentage is not None and not (0 < percentage <= 100):
            raise ValidationError("percentage must be in (0, 100].", argument="percentage")
        key = idempotency_key or new_idempotency_key()
        coid = client_order_id_for(principal, key)
        fields = {"tool": "close_position", "symbol": symbol, "qty": _text(qty), "percentage": _text(percentage)}
        row = await self._journal_row(coid) if idempotency_key is not None else None
        if row is not None:
            recorded, requested = _recorded_request(row, fields)
            check_same_request(recorded, requested, "order")
            if row["status"] not in UNSETTLED:
                return Placed(await self._refresh(principal, row), key, [], replayed=True)
            side, amount = row["side"], Decimal(str(row["qty"]))  # the order this key stands for
        else:
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
        return await self._place(principal, build_request(params, coid), key, fields)


def refusal(result: CheckResult) -> BusinessLogicError:
    """A failed risk check as the error a caller sees (its own code)."""
    return BusinessLogicError(
        f"Order refused by risk check {result.code}: {result.detail}.",
        code=result.code,
        context={"check": result.code},
    )


def _request_details(request: OrderRequest) -> dict[str, Any]:
    details: dict[str, Any] = {"order_class": request.order_class}
    if request.take_profit is not None:
        details["take_profit"] = str(request.take_profit.limit_price)
    if request.stop_loss is not None:
        details["stop_loss"] = str(request.stop_loss.stop_price)
        if request.stop_loss.limit_price is not None:
            details["stop_loss_limit"] = str(request.stop_loss.limit_price)
    return details
