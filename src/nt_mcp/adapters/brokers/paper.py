"""`PaperBroker`: a simulated margin account per principal, kept in this server's database.

State: `paper_accounts` (cash, starting cash, realised P&L, commissions, the equity the trading day
started with), `paper_positions` (signed qty, average entry price, realised P&L per symbol), the
paper orders in `orders` (broker ``paper``) and every fill journaled in `fills`. Restarting the
server keeps all of it. Starting cash is ``NT_PAPER_STARTING_CASH`` when the principal first uses
the account.

Prices come from the configured `MarketData` source (synthetic by default). Fill rules are in
`nt_mcp.domain.paper_fills`: market orders fill at once at the latest price plus/minus
``NT_PAPER_SLIPPAGE_BPS``; limit, stop and stop_limit orders rest and fill when a later price
crosses them; commission is ``NT_PAPER_COMMISSION_PER_ORDER + notional * NT_PAPER_COMMISSION_BPS``.

Short selling (on unless ``NT_PAPER_ALLOW_SHORT=false``): a sell beyond the long position opens a
short, as at an Alpaca margin account. Every symbol is assumed easy to borrow: no locate, no borrow
fee, no recall (orders and short positions say so in ``notes`` / ``short_borrow``). Buying power has
no leverage: ``equity - (long value + |short value|) - reserved``, i.e. ``cash - 2 * |short value| -
reserved`` (`nt_mcp.domain.paper_fills.buying_power`), where each open order reserves what its
opening part needs (a buy: qty x limit or stop price; a short sale: qty x max(limit, 1.03 x price),
Alpaca's rule). Sells of what is held and buys that cover a short need none. No margin calls.

Atomic: every check-then-write of cash, positions or reservations (placing, filling) runs in ONE
database transaction that first takes the principal's account: ``SELECT ... FOR UPDATE`` on the
``paper_accounts`` row on PostgreSQL (so replicas on one database serialise too), ``BEGIN
IMMEDIATE`` on SQLite (the write lock, taken before the first read). Concurrent orders can never
spend the same buying power or sell the same shares twice.

Day start: ``day_start_equity`` is the equity at the previous session's close: today's cash and
positions with today's fills (the ``fills`` journal) undone, the positions valued at the previous
session's closing prices (the last daily bar before today's New York date, from the market data
source). It is computed once per New York trading day and kept.

When resting orders are checked: there is no background task. Each time a principal's account,
positions or orders are read, or an order is placed, the broker first "sweeps" that principal's
open orders against the latest price of their symbols (and expires ``day`` orders from an earlier
New York trading day). A price that crossed and came back between two reads is therefore not seen:
fills happen at read-time prices.

Other limits of the simulation: no trailing_stop or bracket orders, no ``opg``/``cls`` time in
force, no partial fills. The clock is NYSE regular hours Mon-Fri 9:30-16:00 America/New_York with
no holiday calendar.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, TypeVar
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
from nt_mcp.errors import BusinessLogicError, NotFoundError, TradingError, ValidationError
from nt_mcp.infra.db import Database
from nt_mcp.infra.schema import fills, orders, paper_accounts, paper_positions

T = TypeVar("T")
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
    allow_short: bool = True


BORROW_TERMS = "easy to borrow assumed (paper broker): no locate, no borrow fee, no recall"


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
        notes=list(details.get("notes") or []),
    )


def _reserved(row: Any) -> Decimal:
    """Buying power an open order holds: what its opening part needed when it was placed (rows from
    before short selling: qty x limit or stop price for a buy, nothing for a sell)."""
    details = row["details"] or {}
    if "reserved" in details:
        return Decimal(str(details["reserved"]))
    if row["side"] != "buy":
        return Decimal(0)
    return _dec(row["qty"]) * (_opt(row["limit_price"]) or _opt(row["stop_price"]) or Decimal(0))


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
        self._closes: dict[tuple[str, date], Decimal] = {}  # previous session closes already read

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

    @staticmethod
    def fills_since_query(principal: str, since: datetime) -> sa.Select[Any]:
        """A principal's fills since ``since`` (index ix_fills_principal_filled)."""
        return sa.select(fills).where(fills.c.principal == principal, fills.c.filled_at >= since)

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

    async def _locked(self, principal: str, work: Callable[[AsyncConnection, Any], Awaitable[T]]) -> T:
        """Run ``work(conn, account_row)`` in one transaction that holds ``principal``'s account:
        PostgreSQL locks its row (``SELECT ... FOR UPDATE``); SQLite takes the database's write lock
        before reading anything (``BEGIN IMMEDIATE``; ``FOR UPDATE`` does nothing there)."""

        async def run(conn: AsyncConnection) -> T:
            if self.db.backend == "sqlite":
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
            account = (
                (
                    await conn.execute(
                        sa.select(paper_accounts).where(paper_accounts.c.principal == principal).with_for_update()
                    )
                )
                .mappings()
                .one()
            )
            return await work(conn, account)

        return await self.db.transaction(run)

    async def _quotes(self, symbols: Iterable[str], have: Mapping[str, Quote] | None = None) -> dict[str, Quote]:
        """Latest quotes of ``symbols`` (those in ``have`` are not asked again)."""
        quotes = dict(have or {})
        for symbol in sorted(set(symbols) - set(quotes)):
            quotes[symbol] = await self.market_data.latest_quote(symbol)
        return quotes

    async def _positions_rows(self, principal: str, conn: AsyncConnection | None = None) -> list[Any]:
        query = (
            sa.select(paper_positions)
            .where(paper_positions.c.principal == principal, paper_positions.c.qty != 0)
            .order_by(paper_positions.c.symbol)
        )
        if conn is not None:
            return list((await conn.execute(query)).mappings().all())
        async with self.db.connect() as own:
            return list((await own.execute(query)).mappings().all())

    async def _open_rows(self, principal: str) -> list[Any]:
        async with self.db.connect() as conn:
            return list((await conn.execute(self.open_orders_query(principal))).mappings().all())

    async def _available(
        self, conn: AsyncConnection, principal: str, cash: Decimal, quotes: dict[str, Quote], exclude: str | None
    ) -> Decimal:
        """Buying power inside a locked transaction, not counting order ``exclude``'s own reservation.
        Quotes of short positions missing from ``quotes`` are fetched (and added)."""
        shorts = {
            r["symbol"]: _dec(r["qty"]) for r in await self._positions_rows(principal, conn) if _dec(r["qty"]) < 0
        }
        quotes.update(await self._quotes(shorts, quotes))
        short_value = sum((q * quotes[s].price for s, q in shorts.items()), Decimal(0))
        open_rows = (await conn.execute(self.open_orders_query(principal))).mappings().all()
        reserved = sum((_reserved(r) for r in open_rows if r["id"] != exclude), Decimal(0))
        return paper_fills.buying_power(cash, short_value, reserved)

    # ---- the sweep: resting orders against the latest prices ----

    async def sweep(self, principal: str) -> int:
        """Fill, trigger or expire ``principal``'s resting orders at the latest prices. Returns
        how many orders changed state."""
        await self._ensure_account(principal)
        rows = await self._open_rows(principal)
        if not rows:
            return 0
        shorts = {r["symbol"] for r in await self._positions_rows(principal) if _dec(r["qty"]) < 0}
        quotes = await self._quotes({r["symbol"] for r in rows} | shorts)
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
                changed += await self._fill_resting(principal, row["id"], decision.fill_price, quotes)
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

    async def _fill_resting(self, principal: str, order_id: str, price: Decimal, quotes: dict[str, Quote]) -> int:
        async def work(conn: AsyncConnection, account: Any) -> int:
            row = (
                (await conn.execute(sa.select(orders).where(orders.c.id == order_id).with_for_update()))
                .mappings()
                .first()
            )
            if row is None or row["status"] not in PAPER_OPEN_STATUSES:
                return 0
            await self._fill(conn, principal, account, row, _dec(row["qty"]), price, quotes, reserved=True)
            return 1

        return await self._locked(principal, work)

    # ---- fills ----

    async def _fill(
        self,
        conn: AsyncConnection,
        principal: str,
        account: Any,
        row: Any,
        qty: Decimal,
        price: Decimal,
        quotes: dict[str, Quote],
        *,
        reserved: bool,
    ) -> None:
        """Fill order ``row`` for ``qty`` at ``price`` inside `_locked`: cash, position, fill journal,
        order status. An order whose opening part no longer has the buying power (or, with short
        selling off, the shares) it needs is refused: raised for a new order, rejected if it rested."""
        now = self.now()
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
        _, opening = paper_fills.split_order(side, qty, position.qty, Decimal(0))
        problem = code = None
        if opening > 0 and side == "sell" and not self.config.allow_short:
            problem = f"insufficient position: selling {qty} {symbol}, holding {position.qty} (short selling is off)"
            code = "INSUFFICIENT_POSITION"
        elif opening > 0:
            need = opening * price + (fee if side == "buy" else Decimal(0))
            available = await self._available(conn, principal, cash, quotes, exclude=row["id"])
            if need > available:
                problem = f"insufficient buying power: needs {need:.2f}, {available:.2f} available"
                code = "INSUFFICIENT_BUYING_POWER"
        if problem is not None:
            if not reserved:
                raise BusinessLogicError(f"Paper order refused: {problem}.", code=code)
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
        quote = quotes[symbol]
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

    # ---- day start ----

    async def _previous_close(self, symbol: str, today: date) -> Decimal | None:
        """Close of the last daily bar dated before ``today`` (New York date) from the market data
        source: the previous session's close. None when the source has none."""
        if (symbol, today) not in self._closes:
            end = datetime.combine(today, time(0), UTC) - timedelta(microseconds=1)
            try:
                bars = await self.market_data.get_bars(symbol, "1Day", end - timedelta(days=14), end)
            except TradingError:
                return None
            if len(bars) == 0:
                return None
            self._closes[(symbol, today)] = Decimal(str(round(float(bars.close[-1]), 4)))
        return self._closes[(symbol, today)]

    async def _day_start(self, principal: str, account: Any, prices: Mapping[str, Decimal]) -> tuple[Decimal, str]:
        """Equity at the previous session's close, and how it was found. ``prices``: latest price of
        each position held now (a stand-in only when the source has no previous close)."""
        today = ny_trading_date(self.now())
        basis = (
            "equity at the previous session's close: cash and positions then, valued at that session's "
            f"closing prices ({self.market_data.source} daily bars)"
        )
        if account["day_start_on"] == today:
            return _dec(account["day_start_equity"]), basis
        since = datetime.combine(today, time(0), NEW_YORK)
        cash = _dec(account["cash"])
        held = {r["symbol"]: _dec(r["qty"]) for r in await self._positions_rows(principal)}
        async with self.db.connect() as conn:
            todays = (await conn.execute(self.fills_since_query(principal, since))).mappings().all()
        for fill in todays:  # undo today's fills
            qty, amount, fee = _dec(fill["qty"]), _dec(fill["qty"]) * _dec(fill["price"]), _dec(fill["commission"])
            sign = 1 if fill["side"] == "buy" else -1
            cash += sign * amount + fee
            held[fill["symbol"]] = held.get(fill["symbol"], Decimal(0)) - sign * qty
        equity, missing = cash, []
        for symbol, qty in sorted(held.items()):
            if qty == 0:
                continue
            close = await self._previous_close(symbol, today)
            if close is None:
                missing.append(symbol)
                close = prices.get(symbol) or (await self.market_data.latest_quote(symbol)).price
            equity += qty * close
        if missing:
            return equity, f"{basis}; no previous close for {', '.join(missing)}: its latest price stands in"

        async def keep(conn: AsyncConnection) -> None:
            await conn.execute(
                paper_accounts.update()
                .where(paper_accounts.c.principal == principal)
                .values(day_start_equity=_q(equity), day_start_on=today)
            )

        await self.db.transaction(keep)
        return equity, basis

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
        values = {p.symbol: p.market_value or Decimal(0) for p in positions}
        equity = cash + sum(values.values(), Decimal(0))
        short_value = sum((v for v in values.values() if v < 0), Decimal(0))
        reserved = sum((_reserved(r) for r in open_rows), Decimal(0))
        day_start, basis = await self._day_start(
            principal, row, {p.symbol: p.current_price for p in positions if p.current_price is not None}
        )
        return Account(
            equity=equity,
            cash=cash,
            buying_power=paper_fills.buying_power(cash, short_value, reserved),
            day_start_equity=day_start,
            day_pl=equity - day_start,
            day_start_basis=basis,
            realized_pl=_dec(row["realized_pl"]),
            starting_cash=_dec(row["starting_cash"]),
        )

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
                    short_borrow=BORROW_TERMS if qty < 0 else None,
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
        (status ``pending_submit``) becomes this order. The buying-power (or shares) check, the
        reservation and a fill happen in one locked transaction (`_locked`)."""
        self._check_supported(request)
        await self.sweep(principal)
        shorts = {r["symbol"] for r in await self._positions_rows(principal) if _dec(r["qty"]) < 0}
        quotes = await self._quotes(shorts | {request.symbol})
        quote = quotes[request.symbol]
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

        async def work(conn: AsyncConnection, account: Any) -> Order:
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
            reserve, notes = await self._reserve(conn, principal, account, request, qty, quotes, decision.fill_price)
            now = self.now()
            details = dict((existing["details"] if existing is not None else None) or {}) | {
                "triggered": decision.triggered,
                "price_source": quote.source,
                "reserved": str(reserve),
                "notes": notes,
            }
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
                "details": details,
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
                await self._fill(conn, principal, account, row, qty, decision.fill_price, quotes, reserved=False)
            elif request.time_in_force in ("ioc", "fok"):
                await conn.execute(
                    orders.update()
                    .where(orders.c.id == order_id)
                    .values(status="canceled", error="not marketable at once (ioc/fok)")
                )
            row = (await conn.execute(sa.select(orders).where(orders.c.id == order_id))).mappings().one()
            return order_from_row(row)

        return await self._locked(principal, work)

    async def _reserve(
        self,
        conn: AsyncConnection,
        principal: str,
        account: Any,
        request: OrderRequest,
        qty: Decimal,
        quotes: dict[str, Quote],
        fill_price: Decimal | None,
    ) -> tuple[Decimal, list[str]]:
        """Inside `_locked`: the buying power the new order's opening part needs (what it reserves
        while it rests), and notes for the order; raises when the account cannot take it."""
        symbol, side = request.symbol, request.side
        held_row = (
            await conn.execute(
                sa.select(paper_positions.c.qty).where(
                    paper_positions.c.principal == principal, paper_positions.c.symbol == symbol
                )
            )
        ).first()
        held = _dec(held_row[0]) if held_row else Decimal(0)
        open_rows = (await conn.execute(self.open_orders_query(principal))).mappings().all()
        closing_already = sum(
            (_dec(r["qty"]) for r in open_rows if r["side"] == side and r["symbol"] == symbol), Decimal(0)
        )
        _, opening = paper_fills.split_order(side, qty, held, closing_already)
        if opening == 0:
            return Decimal(0), []
        if side == "sell" and not self.config.allow_short:
            raise BusinessLogicError(
                f"Short selling is off on this paper broker (NT_PAPER_ALLOW_SHORT=false): holding {held} {symbol}, "
                f"{closing_already} already in open sell orders, asked to sell {qty}.",
                code="INSUFFICIENT_POSITION",
            )
        price = fill_price if side == "buy" and fill_price is not None else quotes[symbol].price
        need = paper_fills.opening_value(side, opening, price, request.limit_price, request.stop_price)
        if side == "buy":
            need += paper_fills.commission(need, self.config.commission_per_order, self.config.commission_bps)
        available = await self._available(conn, principal, _dec(account["cash"]), quotes, exclude=None)
        if need > available:
            raise BusinessLogicError(
                f"Insufficient buying power: the order needs about {need:.2f}, {available:.2f} is available.",
                code="INSUFFICIENT_BUYING_POWER",
            )
        notes = []
        if side == "sell":
            notes.append(f"sells {opening} {symbol} short: {BORROW_TERMS}")
        return need, notes

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
