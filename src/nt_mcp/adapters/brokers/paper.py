"""`PaperBroker`: a simulated account per principal, kept in this server's database.

State: `paper_accounts` (cash, starting cash, realised P&L, commissions, equity at the start of the
trading day), `paper_positions` (signed qty, average entry price, realised P&L per symbol), the
paper orders in `orders` (broker ``paper``) and every fill journaled in `fills`. Restarting the
server keeps all of it. Starting cash is ``NT_PAPER_STARTING_CASH`` when the principal first uses
the account.

Prices come from the configured `MarketData` source (synthetic by default). Fill rules are in
`nt_mcp.domain.paper_fills`: market orders fill at once at the latest price plus/minus
``NT_PAPER_SLIPPAGE_BPS``; limit, stop and stop_limit orders rest and fill when a later price
crosses them; commission is ``NT_PAPER_COMMISSION_PER_ORDER + notional * NT_PAPER_COMMISSION_BPS``.

When resting orders are checked: there is no background task. Each time a principal's account,
positions or orders are read, or an order is placed, the broker first "sweeps" that principal's
open orders against the latest price of their symbols (and expires ``day`` orders from an earlier
New York trading day). A price that crossed and came back between two reads is therefore not seen:
fills happen at read-time prices.

Limits of the simulation (by design, stated in errors): no short selling (sell at most the held
quantity not already reserved by open sells), no margin (buying power is cash minus what open buy
orders reserve), no trailing_stop or bracket orders, no ``opg``/``cls`` time in force, no partial
fills. The clock is NYSE regular hours Mon-Fri 9:30-16:00 America/New_York with no holiday
calendar.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from nt_mcp.adapters.brokers.base import (
    Account,
    Clock,
    Order,
    OrderRequest,
    OrderStatusFilter,
    Position,
)
from nt_mcp.adapters.data.market import MarketData, Quote
from nt_mcp.domain import paper_fills
from nt_mcp.domain.paper_fills import PositionState
from nt_mcp.errors import BusinessLogicError, NotFoundError, ValidationError
from nt_mcp.infra.db import Database
from nt_mcp.infra.schema import fills, orders, paper_accounts, paper_positions

NEW_YORK = ZoneInfo("America/New_York")
MARKET_OPEN, MARKET_CLOSE = time(9, 30), time(16, 0)
PAPER_OPEN_STATUSES = ("new", "accepted")
_MONEY_STEP = Decimal("0.0000000001")


def _q(value: Decimal) -> Decimal:
    return value.quantize(_MONEY_STEP)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def ny_trading_date(moment: datetime) -> date:
    return moment.astimezone(NEW_YORK).date()


def paper_clock(now: datetime) -> Clock:
    """NYSE regular hours, Monday to Friday 9:30-16:00 New York time; holidays are not known."""
    local = now.astimezone(NEW_YORK)

    def at(day: date, t: time) -> datetime:
        return datetime.combine(day, t, NEW_YORK)

    def next_weekday(day: date) -> date:
        day += timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        return day

    today = local.date()
    is_weekday = today.weekday() < 5
    is_open = is_weekday and at(today, MARKET_OPEN) <= local < at(today, MARKET_CLOSE)
    next_open_day = today if is_weekday and local < at(today, MARKET_OPEN) else next_weekday(today)
    next_close_day = today if is_weekday and local < at(today, MARKET_CLOSE) else next_weekday(today)
    return Clock(
        timestamp=now.astimezone(UTC),
        is_open=is_open,
        next_open=at(next_open_day, MARKET_OPEN).astimezone(UTC),
        next_close=at(next_close_day, MARKET_CLOSE).astimezone(UTC),
    )


@dataclass(frozen=True)
class PaperConfig:
    starting_cash: Decimal = Decimal(100_000)
    slippage_bps: Decimal = Decimal(5)
    commission_per_order: Decimal = Decimal(0)
    commission_bps: Decimal = Decimal(0)


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def _opt(value: Any) -> Decimal | None:
    return Decimal(str(value)) if value is not None else None


def order_from_row(row: Any) -> Order:
    details = row["details"] or {}
    return Order(
        id=row["id"],
        client_order_id=row["client_order_id"],
        symbol=row["symbol"],
        side=row["side"],
        type=row["order_type"],
        time_in_force=row["time_in_force"],
        qty=_opt(row["qty"]),
        notional=_opt(row["notional"]),
        limit_price=_opt(row["limit_price"]),
        stop_price=_opt(row["stop_price"]),
        trail_percent=_opt(row["trail_percent"]),
        status=row["status"],
        filled_qty=_dec(row["filled_qty"]),
        filled_avg_price=_opt(row["filled_avg_price"]),
        commission=_opt(details.get("commission")),
        created_at=_aware(row["created_at"]),
        updated_at=_aware(row["updated_at"]),
        filled_at=datetime.fromisoformat(details["filled_at"]) if details.get("filled_at") else None,
        reject_reason=row["error"],
    )


class PaperBroker:
    name = "paper"

    def __init__(
        self,
        db: Database,
        market_data: MarketData,
        config: PaperConfig | None = None,
        *,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.db = db
        self.market_data = market_data
        self.config = config or PaperConfig()
        self.now = now

    # ---- queries (each named query builder is served by an index in sql/indexes) ----

    @staticmethod
    def open_orders_query(principal: str) -> sa.Select[Any]:
        """A principal's resting paper orders, oldest first (index ix_orders_open_principal)."""
        return (
            sa.select(orders)
            .where(
                orders.c.principal == principal,
                orders.c.broker == "paper",
                orders.c.status.in_(PAPER_OPEN_STATUSES),
            )
            .order_by(orders.c.created_at)
        )

    @staticmethod
    def list_orders_query(principal: str, status: OrderStatusFilter, limit: int) -> sa.Select[Any]:
        """A principal's paper orders, newest first (index ix_orders_principal_created)."""
        query = sa.select(orders).where(orders.c.principal == principal, orders.c.broker == "paper")
        if status == "open":
            query = query.where(orders.c.status.in_(PAPER_OPEN_STATUSES))
        elif status == "closed":
            query = query.where(orders.c.status.not_in((*PAPER_OPEN_STATUSES, "pending_submit")))
        return query.order_by(orders.c.created_at.desc()).limit(limit)

    # ---- account state ----

    async def _ensure_account(self, principal: str) -> None:
        async def create(conn: AsyncConnection) -> None:
            exists = (
                await conn.execute(sa.select(paper_accounts.c.principal).where(paper_accounts.c.principal == principal))
            ).first()
            if exists is None:
                now = self.now()
                await conn.execute(
                    paper_accounts.insert().values(
                        principal=principal,
                        cash=self.config.starting_cash,
                        starting_cash=self.config.starting_cash,
                        realized_pl=0,
                        commissions=0,
                        day_start_equity=self.config.starting_cash,
                        day_start_on=ny_trading_date(now),
                        created_at=now,
                        updated_at=now,
                    )
                )

        with contextlib.suppress(sa.exc.IntegrityError):  # created by a concurrent call
            await self.db.transaction(create)

    async def _quotes(self, symbols: set[str]) -> dict[str, Quote]:
        return {symbol: await self.market_data.latest_quote(symbol) for symbol in sorted(symbols)}

    async def _positions_rows(self, principal: str) -> list[Any]:
        async with self.db.connect() as conn:
            result = await conn.execute(
                sa.select(paper_positions)
                .where(paper_positions.c.principal == principal, paper_positions.c.qty != 0)
                .order_by(paper_positions.c.symbol)
            )
            return list(result.mappings().all())

    async def _open_rows(self, principal: str) -> list[Any]:
        async with self.db.connect() as conn:
            return list((await conn.execute(self.open_orders_query(principal))).mappings().all())

    # ---- the sweep: resting orders against the latest prices ----

    async def sweep(self, principal: str) -> int:
        """Fill, trigger or expire ``principal``'s resting orders at the latest prices. Returns
        how many orders changed state."""
        await self._ensure_account(principal)
        rows = await self._open_rows(principal)
        if not rows:
            return 0
        quotes = await self._quotes({r["symbol"] for r in rows})
        now = self.now()
        changed = 0
        for row in rows:
            if row["time_in_force"] == "day" and ny_trading_date(now) > ny_trading_date(_aware(row["created_at"])):
                changed += await self._set_status(row["id"], "expired", now)
                continue
            quote = quotes[row["symbol"]]
            details = row["details"] or {}
            decision = paper_fills.decide_fill(
                order_type=row["order_type"],
                side=row["side"],
                price=quote.price,
                slippage_bps=self.config.slippage_bps,
                limit_price=_opt(row["limit_price"]),
                stop_price=_opt(row["stop_price"]),
                triggered=bool(details.get("triggered")),
            )
            if decision.fill_price is not None:
                changed += await self._fill_resting(principal, row["id"], decision.fill_price, quote)
            elif decision.triggered and not details.get("triggered"):
                changed += await self._mark_triggered(row["id"], now)
        return changed

    async def _set_status(self, order_id: str, status: str, now: datetime, error: str | None = None) -> int:
        async def work(conn: AsyncConnection) -> int:
            result = await conn.execute(
                orders.update()
                .where(orders.c.id == order_id, orders.c.status.in_(PAPER_OPEN_STATUSES))
                .values(status=status, updated_at=now, error=error)
            )
            return int(result.rowcount or 0)

        return await self.db.transaction(work)

    async def _mark_triggered(self, order_id: str, now: datetime) -> int:
        async def work(conn: AsyncConnection) -> int:
            row = (await conn.execute(sa.select(orders.c.details).where(orders.c.id == order_id))).first()
            details = dict((row[0] if row else None) or {}) | {"triggered": True}
            await conn.execute(orders.update().where(orders.c.id == order_id).values(details=details, updated_at=now))
            return 1

        return await self.db.transaction(work)

    async def _fill_resting(self, principal: str, order_id: str, price: Decimal, quote: Quote) -> int:
        async def work(conn: AsyncConnection) -> int:
            await self._lock_account(conn, principal)
            row = (
                (await conn.execute(sa.select(orders).where(orders.c.id == order_id).with_for_update()))
                .mappings()
                .first()
            )
            if row is None or row["status"] not in PAPER_OPEN_STATUSES:
                return 0
            await self._fill(conn, principal, row, _dec(row["qty"]), price, quote, reserved=True)
            return 1

        return await self.db.transaction(work)

    # ---- fills ----

    async def _lock_account(self, conn: AsyncConnection, principal: str) -> Any:
        return (
            (
                await conn.execute(
                    sa.select(paper_accounts).where(paper_accounts.c.principal == principal).with_for_update()
                )
            )
            .mappings()
            .one()
        )

    async def _fill(
        self,
        conn: AsyncConnection,
        principal: str,
        row: Any,
        qty: Decimal,
        price: Decimal,
        quote: Quote,
        *,
        reserved: bool,
    ) -> None:
        """Fill order ``row`` for ``qty`` at ``price``: cash, position, fill journal, order status.
        A resting order that no longer has the cash or shares it needs is rejected instead."""
        now = self.now()
        account = await self._lock_account(conn, principal)
        symbol, side = row["symbol"], row["side"]
        notional = qty * price
        fee = paper_fills.commission(notional, self.config.commission_per_order, self.config.commission_bps)
        pos_row = (
            (
                await conn.execute(
                    sa.select(paper_positions).where(
                        paper_positions.c.principal == principal, paper_positions.c.symbol == symbol
                    )
                )
            )
            .mappings()
            .first()
        )
        position = PositionState(
            _dec(pos_row["qty"]) if pos_row else Decimal(0),
            _dec(pos_row["avg_entry_price"]) if pos_row else Decimal(0),
            _dec(pos_row["realized_pl"]) if pos_row else Decimal(0),
        )
        cash = _dec(account["cash"])
        problem = None
        if side == "buy" and notional + fee > cash:
            problem = f"insufficient cash: needs {notional + fee:.2f}, has {cash:.2f}"
        if side == "sell" and qty > position.qty:
            problem = f"insufficient position: selling {qty} of {symbol}, holding {position.qty}"
        if problem is not None:
            if not reserved:
                raise BusinessLogicError(
                    f"Paper order refused: {problem}.",
                    code="INSUFFICIENT_BUYING_POWER" if side == "buy" else "INSUFFICIENT_POSITION",
                )
            await conn.execute(
                orders.update().where(orders.c.id == row["id"]).values(status="rejected", error=problem, updated_at=now)
            )
            return
        new_position, realized = paper_fills.apply_fill(position, side, qty, price)
        cash_delta = -(notional + fee) if side == "buy" else notional - fee
        await conn.execute(
            paper_accounts.update()
            .where(paper_accounts.c.principal == principal)
            .values(
                cash=_q(cash + cash_delta),
                realized_pl=_q(_dec(account["realized_pl"]) + realized),
                commissions=_q(_dec(account["commissions"]) + fee),
                updated_at=now,
            )
        )
        values = {
            "qty": _q(new_position.qty),
            "avg_entry_price": _q(new_position.avg_entry_price),
            "realized_pl": _q(new_position.realized_pl),
            "updated_at": now,
        }
        if pos_row is None:
            await conn.execute(paper_positions.insert().values(principal=principal, symbol=symbol, **values))
        else:
            await conn.execute(
                paper_positions.update()
                .where(paper_positions.c.principal == principal, paper_positions.c.symbol == symbol)
                .values(**values)
            )
        await conn.execute(
            fills.insert().values(
                order_id=row["id"],
                principal=principal,
                symbol=symbol,
                side=side,
                qty=qty,
                price=price,
                commission=fee,
                filled_at=now,
            )
        )
        details = dict(row["details"] or {}) | {
            "commission": str(fee),
            "filled_at": now.isoformat(),
            "price_source": quote.source,
            "quote_price": str(quote.price),
        }
        await conn.execute(
            orders.update()
            .where(orders.c.id == row["id"])
            .values(
                status="filled",
                qty=qty,
                filled_qty=qty,
                filled_avg_price=price,
                details=details,
                updated_at=now,
            )
        )

    # ---- Broker protocol ----

    async def get_account(self, principal: str) -> Account:
        await self.sweep(principal)
        positions = await self.get_positions(principal, swept=True)
        async with self.db.connect() as conn:
            row = (
                (await conn.execute(sa.select(paper_accounts).where(paper_accounts.c.principal == principal)))
                .mappings()
                .one()
            )
            open_rows = list((await conn.execute(self.open_orders_query(principal))).mappings().all())
        cash = _dec(row["cash"])
        equity = cash + sum((p.market_value or Decimal(0) for p in positions), Decimal(0))
        day_start = _dec(row["day_start_equity"])
        today = ny_trading_date(self.now())
        if row["day_start_on"] != today:  # first look on a new trading day: that equity starts the day
            day_start = equity

            async def roll(conn: AsyncConnection) -> None:
                await conn.execute(
                    paper_accounts.update()
                    .where(paper_accounts.c.principal == principal)
                    .values(day_start_equity=_q(equity), day_start_on=today)
                )

            await self.db.transaction(roll)
        reserved = sum((self._reserved_cash(r) for r in open_rows if r["side"] == "buy"), Decimal(0))
        return Account(
            equity=equity,
            cash=cash,
            buying_power=max(Decimal(0), cash - reserved),
            day_start_equity=day_start,
            day_pl=equity - day_start,
            realized_pl=_dec(row["realized_pl"]),
            starting_cash=_dec(row["starting_cash"]),
        )

    def _reserved_cash(self, row: Any) -> Decimal:
        price = _opt(row["limit_price"]) or _opt(row["stop_price"]) or Decimal(0)
        return _dec(row["qty"]) * price

    async def get_positions(self, principal: str, *, swept: bool = False) -> list[Position]:
        if not swept:
            await self.sweep(principal)
        rows = await self._positions_rows(principal)
        quotes = await self._quotes({r["symbol"] for r in rows})
        result = []
        for r in rows:
            qty, avg = _dec(r["qty"]), _dec(r["avg_entry_price"])
            price = quotes[r["symbol"]].price
            result.append(
                Position(
                    symbol=r["symbol"],
                    qty=qty,
                    side="long" if qty > 0 else "short",
                    avg_entry_price=avg,
                    current_price=price,
                    market_value=qty * price,
                    cost_basis=qty * avg,
                    unrealized_pl=(price - avg) * qty,
                    realized_pl=_dec(r["realized_pl"]),
                )
            )
        return result

    async def get_orders(self, principal: str, status: OrderStatusFilter, limit: int) -> list[Order]:
        await self.sweep(principal)
        async with self.db.connect() as conn:
            rows = (await conn.execute(self.list_orders_query(principal, status, limit))).mappings().all()
        return [order_from_row(r) for r in rows]

    async def _order_row(self, principal: str, column: sa.Column[Any], value: str) -> Any:
        async with self.db.connect() as conn:
            row = (
                (
                    await conn.execute(
                        sa.select(orders).where(
                            column == value, orders.c.principal == principal, orders.c.broker == "paper"
                        )
                    )
                )
                .mappings()
                .first()
            )
        if row is None or row["status"] == "pending_submit":
            raise NotFoundError(f"No paper order {value!r} for this principal.", context={"order": value})
        return row

    async def get_order(self, principal: str, order_id: str) -> Order:
        await self.sweep(principal)
        return order_from_row(await self._order_row(principal, orders.c.id, order_id))

    async def get_order_by_client_id(self, principal: str, client_order_id: str) -> Order:
        await self.sweep(principal)
        return order_from_row(await self._order_row(principal, orders.c.client_order_id, client_order_id))

    def _check_supported(self, request: OrderRequest) -> None:
        if request.type == "trailing_stop":
            raise ValidationError("The paper broker has no trailing_stop orders.", argument="type")
        if request.order_class == "bracket":
            raise ValidationError("The paper broker has no bracket orders.", argument="take_profit")
        if request.time_in_force in ("opg", "cls"):
            raise ValidationError(
                "The paper broker supports time_in_force day, gtc, ioc and fok.", argument="time_in_force"
            )
        if request.notional is not None and request.type != "market":
            raise ValidationError("notional is only for market orders; give qty.", argument="notional")

    async def submit_order(self, principal: str, request: OrderRequest) -> Order:
        """Place ``request``. Idempotent on its client_order_id: if an order with that id was already
        placed, that order is returned and nothing else happens. A row the caller reserved beforehand
        (status ``pending_submit``) becomes this order."""
        self._check_supported(request)
        await self.sweep(principal)
        quote = await self.market_data.latest_quote(request.symbol)
        decision = paper_fills.decide_fill(
            order_type=request.type,
            side=request.side,
            price=quote.price,
            slippage_bps=self.config.slippage_bps,
            limit_price=request.limit_price,
            stop_price=request.stop_price,
        )
        qty = request.qty
        if qty is None:
            assert request.notional is not None and decision.fill_price is not None
            qty = paper_fills.qty_for_notional(request.notional, decision.fill_price)
            if qty <= 0:
                raise ValidationError("notional buys less than one billionth of a share.", argument="notional")

        async def work(conn: AsyncConnection) -> Order:
            await self._lock_account(conn, principal)
            existing = (
                (
                    await conn.execute(
                        sa.select(orders).where(orders.c.client_order_id == request.client_order_id).with_for_update()
                    )
                )
                .mappings()
                .first()
            )
            if existing is not None and existing["status"] != "pending_submit":
                return order_from_row(existing)  # already placed: the same order, nothing new
            await self._check_reservations(conn, principal, request, qty, quote)
            now = self.now()
            values = {
                "principal": principal,
                "broker": "paper",
                "mode": "paper",
                "symbol": request.symbol,
                "side": request.side,
                "order_type": request.type,
                "time_in_force": request.time_in_force,
                "qty": qty,
                "notional": request.notional,
                "limit_price": request.limit_price,
                "stop_price": request.stop_price,
                "status": "new",
                "details": {"triggered": decision.triggered, "price_source": quote.source},
                "updated_at": now,
            }
            if existing is None:
                order_id = uuid.uuid4().hex
                await conn.execute(
                    orders.insert().values(
                        id=order_id,
                        client_order_id=request.client_order_id,
                        broker_order_id=order_id,
                        created_at=now,
                        **values,
                    )
                )
            else:
                order_id = existing["id"]
                await conn.execute(
                    orders.update().where(orders.c.id == order_id).values(broker_order_id=order_id, **values)
                )
            row = (await conn.execute(sa.select(orders).where(orders.c.id == order_id))).mappings().one()
            if decision.fill_price is not None:
                await self._fill(conn, principal, row, qty, decision.fill_price, quote, reserved=False)
            elif request.time_in_force in ("ioc", "fok"):
                await conn.execute(
                    orders.update()
                    .where(orders.c.id == order_id)
                    .values(status="canceled", error="not marketable at once (ioc/fok)")
                )
            row = (await conn.execute(sa.select(orders).where(orders.c.id == order_id))).mappings().one()
            return order_from_row(row)

        return await self.db.transaction(work)

    async def _check_reservations(
        self, conn: AsyncConnection, principal: str, request: OrderRequest, qty: Decimal, quote: Quote
    ) -> None:
        """Buying power and shares for a new order, net of what open orders already reserve."""
        open_rows = list((await conn.execute(self.open_orders_query(principal))).mappings().all())
        if request.side == "buy":
            account = await self._lock_account(conn, principal)
            reserved = sum((self._reserved_cash(r) for r in open_rows if r["side"] == "buy"), Decimal(0))
            price = request.limit_price or request.stop_price or quote.price
            needed = qty * price
            available = _dec(account["cash"]) - reserved
            if needed > available:
                raise BusinessLogicError(
                    f"Insufficient buying power: the order needs about {needed:.2f}, "
                    f"{max(available, Decimal(0)):.2f} is available.",
                    code="INSUFFICIENT_BUYING_POWER",
                )
            return
        held_row = (
            await conn.execute(
                sa.select(paper_positions.c.qty).where(
                    paper_positions.c.principal == principal, paper_positions.c.symbol == request.symbol
                )
            )
        ).first()
        held = _dec(held_row[0]) if held_row else Decimal(0)
        selling = sum(
            (_dec(r["qty"]) for r in open_rows if r["side"] == "sell" and r["symbol"] == request.symbol),
            Decimal(0),
        )
        if qty > held - selling:
            raise BusinessLogicError(
                f"The paper broker does not sell short: holding {held} {request.symbol}, "
                f"{selling} already in open sell orders, asked to sell {qty}.",
                code="INSUFFICIENT_POSITION",
            )

    async def cancel_order(self, principal: str, order_id: str) -> Order:
        await self.sweep(principal)
        row = await self._order_row(principal, orders.c.id, order_id)
        if row["status"] not in PAPER_OPEN_STATUSES:
            raise BusinessLogicError(
                f"Order {order_id} is {row['status']} and cannot be canceled.", code="ORDER_NOT_CANCELABLE"
            )
        await self._set_status(order_id, "canceled", self.now())
        return order_from_row(await self._order_row(principal, orders.c.id, order_id))

    async def get_clock(self) -> Clock:
        return paper_clock(self.now())

    async def check_symbol(self, symbol: str) -> None:
        return None  # any well-formed symbol has a price in the synthetic source

    async def latest_quote(self, symbol: str) -> Quote:
        return await self.market_data.latest_quote(symbol)

    async def close(self) -> None:
        return None
