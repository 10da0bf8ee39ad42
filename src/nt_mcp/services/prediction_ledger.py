"""`PredictionLedger`: prediction-market orders per principal, paper by default, live on Kalshi behind the gate.

Paper ledger (SQL, one per principal; survives restarts):

- A paper order is a limit order. It fills against the venue's REAL order book fetched at that
  moment: the asks (buy) or bids (sell) of its side are walked best first while the price is within
  the limit, each level giving at most its size (`domain.prediction.walk_book`), so a large order
  fills partially when the book is thin. ``gtc`` orders rest with what is left and are checked
  against a fresh book each time the principal reads orders or positions (no background task: a
  price that came and went between two reads is not seen); ``ioc`` orders cancel what is left.
  On a later book, each level is reduced by what the same order already took at that price (a
  paper fill cannot remove liquidity from the venue, so the order must not take it twice); separate
  orders see the venue's book as it is.
- Every paper fill pays the venue's taker fee (conservative: a resting order filled on a later
  check is charged as a taker too): Kalshi ``ceil(0.07 x C x P x (1-P))`` to the cent per fill,
  Polymarket ``C x rate x P x (1-P)`` with the market's ``feeSchedule`` rate.
- Positions: one per (venue, market, side), average price of the buys, fees, realised P&L
  (sell proceeds - average cost - every fee paid). No short selling: a sell needs the contracts.
  When the venue's resolution is final, reading positions settles them: each contract of the
  winning side pays 1, the losing side 0, a void market returns the average cost.
- Never twice: ``client_order_id`` = `client_order_id_for(principal, idempotency_key)` (the stock
  router's derivation); the journal row is written first and its unique ``client_order_id`` is the
  lock, so overlapping calls with one key make one order. Reusing a key for a different order is a
  validation error.
- Pre-trade limits (``NT_PREDICTION_MAX_CONTRACTS``, ``..._MAX_ORDER_COST``, ``..._MAX_MARKET_EXPOSURE``)
  are checked and the order reserved in one transaction under a lock per principal and market
  (an asyncio lock in the process, plus across processes and replicas a PostgreSQL advisory
  transaction lock, or SQLite's write lock taken first with ``BEGIN IMMEDIATE``), so concurrent
  orders cannot together exceed the exposure limit. Exposure of a market = cost of the contracts
  held (quantity x average price) + the limit cost of open buy orders.

Live (Kalshi only; Polymarket live trading is out of scope): only with ``mode="live"``, Kalshi API
keys configured and the live gate open (``NT_TRADING_MODE=live`` and
``NT_LIVE_TRADING_ACKNOWLEDGED=true``). Same journal, same limits; the order is sent once, and an
unknown outcome (timeout, 5xx) is resolved by looking the order up by ``client_order_id``.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.ext.asyncio import AsyncConnection

from nt_mcp.adapters.brokers.base import BrokerModel as Money
from nt_mcp.adapters.brokers.base import client_order_id_for, new_idempotency_key, tidy
from nt_mcp.adapters.prediction.models import LiveOrder, MarketInfo, OrderBook, Side, Venue
from nt_mcp.adapters.prediction.venues import PredictionVenues
from nt_mcp.domain import prediction as math
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
from nt_mcp.infra.schema import (
    prediction_fills,
    prediction_markets,
    prediction_orders,
    prediction_positions,
    prediction_price_snapshots,
)

Action = Literal["buy", "sell"]
Mode = Literal["paper", "live"]
TimeInForce = Literal["gtc", "ioc"]
OPEN = ("pending", "open", "pending_submit")
RETRY = ("failed", "submit_failed", "pending_submit")
LIVE_STATUS = {"resting": "open", "executed": "filled", "canceled": "canceled", "pending": "open"}
SWEEP_MAX = 50
_STEP = Decimal("0.0000000001")


def _q(value: Decimal) -> Decimal:
    return value.quantize(_STEP)


def _d(value: Any) -> Decimal:
    return Decimal(str(value)) if value is not None else Decimal(0)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _now() -> datetime:
    return datetime.now(UTC)


class PredictionFill(Money):
    count: Decimal
    price: Decimal
    fee: Decimal
    book_fetched_at: datetime = Field(description="when the book this fill was priced from was fetched")
    filled_at: datetime


class PredictionOrder(Money):
    id: str = Field(description="this server's order id (use it with cancel_prediction_order)")
    client_order_id: str
    venue: Venue
    mode: Mode
    market_id: str
    side: Side
    action: Action
    time_in_force: TimeInForce
    count: Decimal
    limit_price: Decimal
    status: str = Field(description="pending, open (resting), filled, canceled, expired, failed, rejected, ...")
    filled_count: Decimal
    avg_fill_price: Decimal | None
    fees: Decimal
    venue_order_id: str | None = None
    error: str | None = None
    created_at: datetime
    updated_at: datetime
    fills: list[PredictionFill] = Field(default_factory=list)


class PredictionPosition(Money):
    venue: Venue
    market_id: str
    title: str | None = None
    side: Side
    qty: Decimal
    avg_price: Decimal
    fees: Decimal
    realized_pnl: Decimal = Field(description="sell proceeds and settlement payouts minus cost, minus every fee")
    status: str = Field(description="open, closed (sold out) or settled")
    resolution: str | None = None
    mark_price: Decimal | None = Field(None, description="the side's best bid (what the contracts sell for now)")
    mark_source: str | None = None
    marked_at: datetime | None = None
    unrealized_pnl: Decimal | None = None
    updated_at: datetime


@dataclass(frozen=True)
class PredictionLimits:
    max_contracts: Decimal
    max_order_cost: Decimal
    max_market_exposure: Decimal


@dataclass(frozen=True)
class OrderParams:
    venue: Venue
    market_id: str
    side: Side
    action: Action
    count: Decimal
    limit_price: Decimal
    time_in_force: TimeInForce = "gtc"
    mode: Mode = "paper"


@dataclass(frozen=True)
class Placed:
    order: PredictionOrder
    idempotency_key: str
    replayed: bool
    checks: list[str]
    market: MarketInfo | None = None
    book: OrderBook | None = None


@dataclass(frozen=True)
class Unavailable:
    """A venue that could not be asked during a read; the rest of the answer is still served."""

    venue: str
    code: str
    message: str
    retry_after_s: float | None


class _AlreadyReserved(Exception):
    """The journal row of this client_order_id exists already (written by a concurrent call)."""


def fee_for(market: MarketInfo, walk: math.Walk) -> Decimal:
    if market.venue == "kalshi":
        return math.kalshi_fee_for_walk(walk)
    return math.polymarket_fee_for_walk(walk, market.fee_rate or Decimal(0))


def fee_at_limit(market: MarketInfo, count: Decimal, price: Decimal) -> Decimal:
    """The taker fee if the whole order filled at its limit price (for the cost limit)."""
    if market.venue == "kalshi":
        return math.kalshi_taker_fee(count, price)
    return math.polymarket_taker_fee(count, price, market.fee_rate or Decimal(0))


def _advisory_key(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big", signed=True)


class PredictionLedger:
    def __init__(self, db: Database, venues: PredictionVenues, limits: PredictionLimits, server_mode: str) -> None:
        self.db = db
        self.venues = venues
        self.limits = limits
        self.server_mode = server_mode
        self._locks: dict[str, asyncio.Lock] = {}

    # ---- queries (each served by an index in sql/indexes) ----

    @staticmethod
    def orders_query(principal: str, status: str, limit: int, venue: str | None = None) -> sa.Select[Any]:
        """A principal's prediction orders, newest first (index ix_prediction_orders_principal_created)."""
        query = sa.select(prediction_orders).where(prediction_orders.c.principal == principal)
        if venue is not None:
            query = query.where(prediction_orders.c.venue == venue)
        if status == "open":
            query = query.where(prediction_orders.c.status.in_(OPEN))
        elif status == "closed":
            query = query.where(prediction_orders.c.status.not_in(OPEN))
        return query.order_by(prediction_orders.c.created_at.desc()).limit(limit)

    @staticmethod
    def open_orders_query(principal: str, venue: str, market_id: str) -> sa.Select[Any]:
        """Open orders of a principal in one market: exposure and held contracts already promised
        (index ix_prediction_orders_open)."""
        return sa.select(prediction_orders).where(
            prediction_orders.c.principal == principal,
            prediction_orders.c.venue == venue,
            prediction_orders.c.market_id == market_id,
            prediction_orders.c.status.in_(OPEN),
        )

    @staticmethod
    def fills_query(order_ids: list[str]) -> sa.Select[Any]:
        """The fills of some orders, oldest first (index ix_prediction_fills_order)."""
        return (
            sa.select(prediction_fills)
            .where(prediction_fills.c.order_id.in_(order_ids))
            .order_by(prediction_fills.c.order_id, prediction_fills.c.id)
        )

    @staticmethod
    def latest_snapshot_query(venue: str, market_id: str, side: str) -> sa.Select[Any]:
        """The newest stored top of book of a market side: the mark when the venue is down
        (index ix_prediction_snapshots_latest)."""
        return (
            sa.select(prediction_price_snapshots)
            .where(
                prediction_price_snapshots.c.venue == venue,
                prediction_price_snapshots.c.market_id == market_id,
                prediction_price_snapshots.c.side == side,
            )
            .order_by(prediction_price_snapshots.c.fetched_at.desc())
            .limit(1)
        )

    # ---- locks ----

    @asynccontextmanager
    async def _market_lock(self, principal: str, venue: str, market_id: str) -> AsyncIterator[str]:
        key = f"{principal}\x1f{venue}\x1f{market_id}"
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            yield key

    async def _advisory(self, conn: AsyncConnection, key: str) -> None:
        """The lock across processes (replicas) for ``key``, held until the transaction ends; the first
        statement of the transaction. PostgreSQL: an advisory transaction lock on the key's hash.
        SQLite: the database's write lock before anything is read (``BEGIN IMMEDIATE``); without it the
        driver would start the transaction only at the first write, after the limit check's reads."""
        if self.db.backend == "postgresql":
            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _advisory_key(key)})
        elif self.db.backend == "sqlite":
            await conn.exec_driver_sql("BEGIN IMMEDIATE")

    # ---- reading the journal ----

    async def _row(self, client_order_id: str) -> Any:
        async with self.db.connect() as conn:
            result = await conn.execute(
                sa.select(prediction_orders).where(prediction_orders.c.client_order_id == client_order_id)
            )
            return result.mappings().first()

    async def _order_by_id(self, principal: str, order_id: str) -> Any:
        async with self.db.connect() as conn:
            result = await conn.execute(
                sa.select(prediction_orders).where(
                    prediction_orders.c.id == order_id, prediction_orders.c.principal == principal
                )
            )
            return result.mappings().first()

    async def _orders(self, rows: list[Any]) -> list[PredictionOrder]:
        fills: dict[str, list[PredictionFill]] = {}
        if rows:
            async with self.db.connect() as conn:
                for f in (await conn.execute(self.fills_query([r["id"] for r in rows]))).mappings():
                    fills.setdefault(f["order_id"], []).append(
                        PredictionFill(
                            count=_d(f["count"]),
                            price=_d(f["price"]),
                            fee=_d(f["fee"]),
                            book_fetched_at=_aware(f["book_fetched_at"]),
                            filled_at=_aware(f["filled_at"]),
                        )
                    )
        return [self._order_model(r, fills.get(r["id"], [])) for r in rows]

    @staticmethod
    def _order_model(row: Any, fills: list[PredictionFill]) -> PredictionOrder:
        filled = _d(row["filled_count"])
        return PredictionOrder(
            id=row["id"],
            client_order_id=row["client_order_id"],
            venue=row["venue"],
            mode=row["mode"],
            market_id=row["market_id"],
            side=row["side"],
            action=row["action"],
            time_in_force=row["time_in_force"],
            count=_d(row["count"]),
            limit_price=_d(row["limit_price"]),
            status=row["status"],
            filled_count=filled,
            avg_fill_price=_d(row["filled_cost"]) / filled if filled > 0 else None,
            fees=_d(row["fees"]),
            venue_order_id=row["venue_order_id"],
            error=row["error"],
            created_at=_aware(row["created_at"]),
            updated_at=_aware(row["updated_at"]),
            fills=fills,
        )

    async def _order_out(self, client_order_id: str) -> PredictionOrder:
        row = await self._row(client_order_id)
        if row is None:
            raise NotFoundError(f"No prediction order {client_order_id}.")
        return (await self._orders([row]))[0]

    # ---- markets ----

    async def remember_market(self, market: MarketInfo) -> None:
        """Keep the latest metadata read of a market (titles of positions, status, resolution)."""
        values = {
            "title": market.title[:2000],
            "category": (market.category or None) and str(market.category)[:128],
            "status": market.status,
            "resolution": market.resolution,
            "close_time": market.close_time,
            "fetched_at": market.fetched_at,
        }

        async def upsert(conn: AsyncConnection) -> None:
            key = (prediction_markets.c.venue == market.venue, prediction_markets.c.market_id == market.id)
            updated = await conn.execute(prediction_markets.update().where(*key).values(**values))
            if updated.rowcount == 0:
                await conn.execute(
                    prediction_markets.insert().values(venue=market.venue, market_id=market.id, **values)
                )

        with suppress(sa.exc.IntegrityError):  # inserted by a concurrent call: that row is as good
            await self.db.transaction(upsert)

    async def _snapshot(self, conn: AsyncConnection, book: OrderBook) -> None:
        await conn.execute(
            prediction_price_snapshots.insert().values(
                venue=book.venue,
                market_id=book.market_id,
                side=book.side,
                best_bid=book.best_bid,
                best_ask=book.best_ask,
                bid_size=book.bids[0].size if book.bids else None,
                ask_size=book.asks[0].size if book.asks else None,
                venue_timestamp=book.venue_timestamp,
                fetched_at=book.fetched_at,
            )
        )

    async def record_snapshot(self, book: OrderBook) -> None:
        with suppress(DatabaseError):  # a snapshot is a record of what was seen; losing one loses nothing
            await self.db.transaction(lambda conn: self._snapshot(conn, book))

    # ---- placing ----

    def _check_live_gate(self, params: OrderParams) -> None:
        """Every refusal of a live order happens here, before any request to a venue."""
        if params.mode != "live":
            return
        if params.venue != "kalshi":
            raise BusinessLogicError(
                "Live trading on Polymarket is out of scope for this server; use mode='paper'.",
                code="LIVE_NOT_SUPPORTED",
                context={"venue": params.venue},
            )
        if self.server_mode != "live":
            raise BusinessLogicError(
                "Live orders need the live gate: NT_TRADING_MODE=live and NT_LIVE_TRADING_ACKNOWLEDGED=true. "
                "This server is in paper mode; use mode='paper'.",
                code="LIVE_GATE_CLOSED",
            )
        if not self.venues.kalshi.has_keys:
            raise BusinessLogicError(
                "Kalshi live orders need NT_KALSHI_KEY_ID and NT_KALSHI_PRIVATE_KEY_FILE.", code="LIVE_NOT_CONFIGURED"
            )

    async def place(self, principal: str, params: OrderParams, idempotency_key: str | None) -> Placed:
        self._check_live_gate(params)
        key = idempotency_key or new_idempotency_key()
        coid = client_order_id_for(principal, key)
        existing = await self._row(coid)
        if existing is not None:
            _check_same_order(existing, params)
            if existing["status"] not in RETRY:
                return Placed(await self._order_out(coid), key, replayed=True, checks=[])
        market = await self.venues.market(params.venue, params.market_id)
        await self.remember_market(market)
        if market.status != "open":
            raise BusinessLogicError(
                f"{market.venue} market {market.id} is {market.status}; it takes no orders.",
                code="MARKET_CLOSED",
                context={"venue": market.venue, "market_id": market.id},
            )
        ranges = [(r.start, r.end, r.step) for r in market.tick_ranges]
        if not math.on_tick(params.limit_price, ranges):
            steps = ", ".join(f"{r.start}..{r.end} step {r.step}" for r in market.tick_ranges)
            raise ValidationError(
                f"limit_price {params.limit_price} is not a valid price on this market ({steps}).",
                argument="limit_price",
            )
        async with self._market_lock(principal, market.venue, market.id) as lock_key:
            try:
                checks = await self._reserve(principal, params, market, coid, existing, lock_key)
            except (sa.exc.IntegrityError, _AlreadyReserved):  # another call with this key reserved it first
                return Placed(await self._order_out(coid), key, replayed=True, checks=[])
            if params.mode == "live":
                order = await self._submit_live(coid, params, market)
                return Placed(order, key, replayed=existing is not None, checks=checks, market=market)
            try:
                book = await self.venues.book(market, params.side)
            except TradingError as error:
                await self._set_status(coid, "failed", f"{error.code}: {error.message}")
                raise
            await self._apply_fill(coid, market, book, lock_key)
        return Placed(await self._order_out(coid), key, replayed=False, checks=checks, market=market, book=book)

    async def _reserve(
        self, principal: str, params: OrderParams, market: MarketInfo, coid: str, existing: Any, lock_key: str
    ) -> list[str]:
        """Check the limits and write the journal row (or revive a failed one) in one transaction."""
        limits = self.limits
        count, price = params.count, params.limit_price
        if count > limits.max_contracts:
            raise BusinessLogicError(
                f"{count} contracts is more than the {limits.max_contracts} allowed per order "
                "(NT_PREDICTION_MAX_CONTRACTS).",
                code="PREDICTION_MAX_CONTRACTS",
            )
        cost = count * price + (fee_at_limit(market, count, price) if params.action == "buy" else Decimal(0))
        if params.action == "buy" and cost > limits.max_order_cost:
            raise BusinessLogicError(
                f"The order costs up to {tidy(cost)} (contracts x limit price + taker fee), more than the "
                f"{limits.max_order_cost} allowed per order (NT_PREDICTION_MAX_ORDER_COST).",
                code="PREDICTION_MAX_ORDER_COST",
            )
        checks = [f"contracts {tidy(count)} <= {limits.max_contracts}"]
        if params.action == "buy":
            checks.append(f"order cost {tidy(cost)} <= {limits.max_order_cost}")

        async def work(conn: AsyncConnection) -> list[str]:
            await self._advisory(conn, lock_key)
            if existing is None:  # a call with the same key got here first: that order is the answer
                taken = await conn.execute(
                    sa.select(prediction_orders.c.id).where(prediction_orders.c.client_order_id == coid)
                )
                if taken.first() is not None:
                    raise _AlreadyReserved
            held = await self._held(conn, principal, market, params.mode)
            promised = Decimal(0)
            reserved = Decimal(0)
            for row in (await conn.execute(self.open_orders_query(principal, market.venue, market.id))).mappings():
                if row["mode"] != params.mode or row["client_order_id"] == coid:
                    continue
                left = _d(row["count"]) - _d(row["filled_count"])
                if row["action"] == "buy":
                    reserved += left * _d(row["limit_price"])
                elif row["side"] == params.side:
                    promised += left
            if params.action == "sell":
                have = held.get(params.side, (Decimal(0), Decimal(0)))[0] - promised
                if count > have:
                    raise BusinessLogicError(
                        f"Selling {tidy(count)} {params.side.upper()} needs that many held; {tidy(have)} are "
                        "held and not already offered (no short selling: buy the other side instead).",
                        code="INSUFFICIENT_POSITION",
                    )
                found = [f"held {tidy(have)} >= {tidy(count)}"]
            else:
                exposure = sum((q * a for q, a in held.values()), Decimal(0)) + reserved
                if exposure + cost > limits.max_market_exposure:
                    raise BusinessLogicError(
                        f"Exposure to {market.venue} {market.id} would be {tidy(exposure + cost)} "
                        f"(held {tidy(exposure - reserved)} + open buys {tidy(reserved)} + this order "
                        f"{tidy(cost)}), more than {limits.max_market_exposure} (NT_PREDICTION_MAX_MARKET_EXPOSURE).",
                        code="PREDICTION_MAX_EXPOSURE",
                    )
                found = [f"market exposure {tidy(exposure + cost)} <= {limits.max_market_exposure}"]
            now = _now()
            status = "pending_submit" if params.mode == "live" else "pending"
            if existing is None:
                await conn.execute(
                    prediction_orders.insert().values(
                        id=uuid.uuid4().hex,
                        client_order_id=coid,
                        principal=principal,
                        venue=market.venue,
                        mode=params.mode,
                        market_id=market.id,
                        side=params.side,
                        action=params.action,
                        time_in_force=params.time_in_force,
                        count=count,
                        limit_price=price,
                        status=status,
                        filled_count=0,
                        filled_cost=0,
                        fees=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                await conn.execute(
                    prediction_orders.update()
                    .where(prediction_orders.c.client_order_id == coid)
                    .values(status=status, error=None, updated_at=now)
                )
            return found

        return checks + await self.db.transaction(work)

    async def _held(
        self, conn: AsyncConnection, principal: str, market: MarketInfo, mode: Mode
    ) -> dict[str, tuple[Decimal, Decimal]]:
        """(qty, avg_price) per side held in a market. Live exposure counts the live orders' fills
        journaled here (positions are the paper ledger's)."""
        if mode == "live":
            result = await conn.execute(
                sa.select(prediction_orders).where(
                    prediction_orders.c.principal == principal,
                    prediction_orders.c.venue == market.venue,
                    prediction_orders.c.market_id == market.id,
                    prediction_orders.c.mode == "live",
                )
            )
            held: dict[str, tuple[Decimal, Decimal]] = {}
            for row in result.mappings():
                if row["action"] == "buy" and _d(row["filled_count"]) > 0:
                    qty, _ = held.get(row["side"], (Decimal(0), Decimal(0)))
                    total = qty + _d(row["filled_count"])
                    held[row["side"]] = (total, _d(row["filled_cost"]) / _d(row["filled_count"]))
            return held
        result = await conn.execute(
            sa.select(prediction_positions).where(
                prediction_positions.c.principal == principal,
                prediction_positions.c.venue == market.venue,
                prediction_positions.c.market_id == market.id,
            )
        )
        return {r["side"]: (_d(r["qty"]), _d(r["avg_price"])) for r in result.mappings()}

    async def _set_status(self, coid: str, status: str, error: str | None = None) -> None:
        async def update(conn: AsyncConnection) -> None:
            await conn.execute(
                prediction_orders.update()
                .where(prediction_orders.c.client_order_id == coid)
                .values(status=status, error=(error or None) and error[:2000], updated_at=_now())
            )

        await self.db.transaction(update)

    async def _apply_fill(self, coid: str, market: MarketInfo, book: OrderBook, lock_key: str) -> None:
        """Walk ``book`` for what the order still wants and book the fills, the position and a snapshot."""

        async def work(conn: AsyncConnection) -> None:
            await self._advisory(conn, lock_key)
            row = (
                (await conn.execute(sa.select(prediction_orders).where(prediction_orders.c.client_order_id == coid)))
                .mappings()
                .one()
            )
            await self._snapshot(conn, book)
            if row["status"] not in ("pending", "open"):
                return
            buying = row["action"] == "buy"
            wanted = _d(row["count"]) - _d(row["filled_count"])
            taken: dict[Decimal, Decimal] = {}  # what this order already took at each price
            for fill in (await conn.execute(self.fills_query([row["id"]]))).mappings():
                taken[_d(fill["price"])] = taken.get(_d(fill["price"]), Decimal(0)) + _d(fill["count"])
            levels = [
                math.Level(lv.price, lv.size - taken.get(lv.price, Decimal(0)))
                for lv in (book.asks if buying else book.bids)
            ]
            walk = math.walk_book(
                levels,
                wanted,
                _d(row["limit_price"]),
                buying=buying,
            )
            now = _now()
            fee = fee_for(market, walk) if walk.fills else Decimal(0)
            fee_left = fee
            for index, fill in enumerate(walk.fills):
                share = fee_left if index == len(walk.fills) - 1 else _q(fee * fill.size / walk.filled)
                fee_left -= share
                await conn.execute(
                    prediction_fills.insert().values(
                        order_id=row["id"],
                        principal=row["principal"],
                        venue=row["venue"],
                        market_id=row["market_id"],
                        side=row["side"],
                        action=row["action"],
                        count=fill.size,
                        price=fill.price,
                        fee=share,
                        book_fetched_at=book.fetched_at,
                        filled_at=now,
                    )
                )
            done = walk.filled >= wanted
            status = "filled" if done else ("open" if row["time_in_force"] == "gtc" else "canceled")
            await conn.execute(
                prediction_orders.update()
                .where(prediction_orders.c.id == row["id"])
                .values(
                    status=status,
                    filled_count=_d(row["filled_count"]) + walk.filled,
                    filled_cost=_d(row["filled_cost"]) + walk.notional,
                    fees=_d(row["fees"]) + fee,
                    updated_at=now,
                    error=None if walk.fills or done else "no liquidity within the limit price",
                )
            )
            if walk.fills:
                await self._book_position(conn, row, walk, fee, now)

        await self.db.transaction(work)

    async def _book_position(
        self, conn: AsyncConnection, order: Any, walk: math.Walk, fee: Decimal, now: datetime
    ) -> None:
        key = (
            prediction_positions.c.principal == order["principal"],
            prediction_positions.c.venue == order["venue"],
            prediction_positions.c.market_id == order["market_id"],
            prediction_positions.c.side == order["side"],
        )
        row = (await conn.execute(sa.select(prediction_positions).where(*key))).mappings().first()
        qty = _d(row["qty"]) if row else Decimal(0)
        avg = _d(row["avg_price"]) if row else Decimal(0)
        fees = _d(row["fees"]) if row else Decimal(0)
        realized = _d(row["realized_pnl"]) if row else Decimal(0)
        if order["action"] == "buy":
            new_qty = qty + walk.filled
            avg = _q((qty * avg + walk.notional) / new_qty)
            realized -= fee
        else:
            new_qty = qty - walk.filled
            realized += walk.notional - avg * walk.filled - fee
        values = {
            "qty": new_qty,
            "avg_price": avg,
            "fees": fees + fee,
            "realized_pnl": _q(realized),
            "status": "open" if new_qty > 0 else "closed",
            "updated_at": now,
        }
        if row is None:
            await conn.execute(
                prediction_positions.insert().values(
                    principal=order["principal"],
                    venue=order["venue"],
                    market_id=order["market_id"],
                    side=order["side"],
                    **values,
                )
            )
        else:
            await conn.execute(prediction_positions.update().where(*key).values(**values))

    # ---- live (Kalshi) ----

    async def _submit_live(self, coid: str, params: OrderParams, market: MarketInfo) -> PredictionOrder:
        kalshi = self.venues.kalshi
        try:
            found = await kalshi.find_order(market.id, coid)
        except NotFoundError:
            found = None  # never seen by Kalshi: it may be sent, with the same client_order_id
        except TradingError as error:
            await self._set_status(coid, "pending_submit", f"{error.code}: {error.message}")
            raise
        if found is not None:
            await self._record_live(coid, found)
            return await self._order_out(coid)
        body = kalshi.order_body(
            market.id, params.action, params.side, params.count, params.limit_price, params.time_in_force, coid
        )
        try:
            order = await kalshi.submit_order(body, params.time_in_force)
        except (ValidationError, BusinessLogicError, NotFoundError) as error:
            await self._set_status(coid, "rejected", error.message)
            raise
        except RateLimitError as error:
            await self._set_status(coid, "submit_failed", error.message)
            raise
        except (NetworkError, ExternalAPIError) as error:
            order = await self._resolve_unknown(coid, market.id, error)
        await self._record_live(coid, order)
        return await self._order_out(coid)

    async def _resolve_unknown(self, coid: str, ticker: str, error: TradingError) -> LiveOrder:
        """The order may or may not be at Kalshi: look it up by client_order_id, never resend."""
        try:
            return await self.venues.kalshi.find_order(ticker, coid)
        except NotFoundError:
            await self._set_status(coid, "submit_failed", error.message)
            raise ExternalAPIError(
                f"The order was not placed ({error.message}). Call place_prediction_order again with the same "
                "idempotency_key to retry safely.",
                service="kalshi",
                retryable=True,
                retry_after_s=error.retry_after_s,
            ) from error
        except TradingError:
            await self._set_status(coid, "pending_submit", error.message)
            raise ExternalAPIError(
                f"The order's outcome is unknown ({error.message}) and Kalshi cannot be asked now. Call "
                "place_prediction_order again with the same idempotency_key: it is looked up, not resent.",
                service="kalshi",
                retryable=True,
                retry_after_s=error.retry_after_s,
            ) from error

    async def _record_live(self, coid: str, order: LiveOrder) -> None:
        filled = order.filled_count
        values: dict[str, Any] = {
            "venue_order_id": order.order_id,
            "status": LIVE_STATUS.get(order.status, order.status),
            "filled_count": filled,
            "updated_at": _now(),
            "error": None,
        }
        if order.average_fill_price is not None:
            values["filled_cost"] = order.average_fill_price * filled
        if order.average_fee_paid is not None:
            values["fees"] = order.average_fee_paid * filled

        async def update(conn: AsyncConnection) -> None:
            await conn.execute(
                prediction_orders.update().where(prediction_orders.c.client_order_id == coid).values(**values)
            )

        await self.db.transaction(update)

    # ---- cancel ----

    async def cancel(self, principal: str, order_id: str) -> PredictionOrder:
        row = await self._order_by_id(principal, order_id)
        if row is None:
            raise NotFoundError(f"You have no prediction order {order_id[:80]!r}.", context={"order_id": order_id[:80]})
        if row["status"] not in ("pending", "open"):
            raise BusinessLogicError(
                f"Order {order_id} is {row['status']}; only open orders can be canceled.", code="ORDER_NOT_CANCELABLE"
            )
        if row["mode"] == "live":
            if not self.venues.kalshi.has_keys:
                raise BusinessLogicError("Kalshi keys are no longer configured.", code="LIVE_NOT_CONFIGURED")
            await self._record_live(
                row["client_order_id"], await self.venues.kalshi.cancel_order(row["venue_order_id"])
            )
        else:
            async with self._market_lock(principal, row["venue"], row["market_id"]) as lock_key:

                async def work(conn: AsyncConnection) -> None:
                    await self._advisory(conn, lock_key)
                    await conn.execute(
                        prediction_orders.update()
                        .where(prediction_orders.c.id == order_id, prediction_orders.c.status.in_(("pending", "open")))
                        .values(status="canceled", updated_at=_now())
                    )

                await self.db.transaction(work)
        return await self._order_out(row["client_order_id"])

    # ---- reads: orders (with the sweep) and positions (with settlement) ----

    async def sweep(self, principal: str) -> list[Unavailable]:
        """Check the principal's resting paper orders against fresh books; close those whose market
        stopped trading. Venues that cannot be asked are reported, their orders left as they were."""
        async with self.db.connect() as conn:
            rows = list((await conn.execute(self.orders_query(principal, "open", SWEEP_MAX))).mappings().all())
        groups: dict[tuple[str, str, str], list[Any]] = {}
        for row in rows:
            if row["mode"] == "paper" and row["status"] in ("pending", "open"):
                groups.setdefault((row["venue"], row["market_id"], row["side"]), []).append(row)
        down: dict[str, Unavailable] = {}
        for (venue, market_id, side), orders in groups.items():
            if venue in down:
                continue
            try:
                market = await self.venues.market(venue, market_id)  # type: ignore[arg-type]
                if market.status != "open":
                    for row in orders:
                        await self._set_status(row["client_order_id"], "expired", f"market {market.status}")
                    continue
                book = await self.venues.book(market, side)  # type: ignore[arg-type]
            except TradingError as error:
                if error.code in ("SERVICE_UNAVAILABLE", "NETWORK_ERROR", "EXTERNAL_API_ERROR", "RATE_LIMITED"):
                    down[venue] = Unavailable(venue, error.code, error.message, error.retry_after_s)
                    continue
                raise
            async with self._market_lock(principal, venue, market_id) as lock_key:
                for row in sorted(orders, key=lambda r: _aware(r["created_at"])):
                    await self._apply_fill(row["client_order_id"], market, book, lock_key)
        return list(down.values())

    async def orders(
        self, principal: str, status: str, limit: int, venue: str | None
    ) -> tuple[list[PredictionOrder], list[Unavailable]]:
        down = await self.sweep(principal)
        async with self.db.connect() as conn:
            rows = list((await conn.execute(self.orders_query(principal, status, limit, venue))).mappings().all())
        return await self._orders(rows), down

    async def settle(self, principal: str, market: MarketInfo) -> int:
        """Settle the principal's open positions in ``market`` when its resolution is final: the winning
        side pays 1 per contract, the losing side 0, a void market returns the average cost. Open
        orders there are canceled. Returns how many positions were settled."""
        if not market.resolution_final or market.resolution is None:
            return 0
        resolution = market.resolution
        async with self._market_lock(principal, market.venue, market.id) as lock_key:

            async def work(conn: AsyncConnection) -> int:
                await self._advisory(conn, lock_key)
                key = (
                    prediction_positions.c.principal == principal,
                    prediction_positions.c.venue == market.venue,
                    prediction_positions.c.market_id == market.id,
                )
                rows = (await conn.execute(sa.select(prediction_positions).where(*key))).mappings().all()
                settled = 0
                now = _now()
                for row in rows:
                    if row["status"] == "settled":
                        continue
                    qty, avg = _d(row["qty"]), _d(row["avg_price"])
                    payout = qty if resolution == row["side"] else (qty * avg if resolution == "void" else Decimal(0))
                    await conn.execute(
                        prediction_positions.update()
                        .where(*key, prediction_positions.c.side == row["side"])
                        .values(
                            qty=0,
                            status="settled",
                            resolution=resolution,
                            settled_at=now,
                            updated_at=now,
                            realized_pnl=_q(_d(row["realized_pnl"]) + payout - qty * avg),
                        )
                    )
                    settled += 1
                await conn.execute(
                    prediction_orders.update()
                    .where(
                        prediction_orders.c.principal == principal,
                        prediction_orders.c.venue == market.venue,
                        prediction_orders.c.market_id == market.id,
                        prediction_orders.c.mode == "paper",
                        prediction_orders.c.status.in_(("pending", "open")),
                    )
                    .values(status="expired", error=f"market resolved {resolution}", updated_at=now)
                )
                return settled

            return await self.db.transaction(work)

    async def positions(
        self, principal: str, include_closed: bool
    ) -> tuple[list[PredictionPosition], list[Unavailable]]:
        down = await self.sweep(principal)
        down_venues = {u.venue for u in down}
        async with self.db.connect() as conn:
            rows: list[Any] = list(
                (
                    await conn.execute(
                        sa.select(prediction_positions, prediction_markets.c.title)
                        .select_from(
                            prediction_positions.outerjoin(
                                prediction_markets,
                                sa.and_(
                                    prediction_markets.c.venue == prediction_positions.c.venue,
                                    prediction_markets.c.market_id == prediction_positions.c.market_id,
                                ),
                            )
                        )
                        .where(prediction_positions.c.principal == principal)
                        .order_by(
                            prediction_positions.c.venue, prediction_positions.c.market_id, prediction_positions.c.side
                        )
                    )
                )
                .mappings()
                .all()
            )
        markets: dict[tuple[str, str], MarketInfo | None] = {}
        for row in rows:
            ident = (row["venue"], row["market_id"])
            if row["status"] != "open" or ident in markets or row["venue"] in down_venues:
                continue
            try:
                market = await self.venues.market(row["venue"], row["market_id"])
            except TradingError as error:
                if error.code in ("SERVICE_UNAVAILABLE", "NETWORK_ERROR", "EXTERNAL_API_ERROR", "RATE_LIMITED"):
                    down.append(Unavailable(row["venue"], error.code, error.message, error.retry_after_s))
                    down_venues.add(row["venue"])
                    continue
                raise
            markets[ident] = market
            await self.remember_market(market)
            await self.settle(principal, market)
        if any(m is not None and m.resolution_final for m in markets.values()):
            query = sa.select(prediction_positions).where(prediction_positions.c.principal == principal)
            async with self.db.connect() as conn:
                refreshed = {(r["venue"], r["market_id"], r["side"]): r for r in (await conn.execute(query)).mappings()}
            rows = [{**row, **refreshed[(row["venue"], row["market_id"], row["side"])]} for row in rows]
        out = []
        for row in rows:
            if row["status"] != "open" and not include_closed:
                continue
            out.append(await self._position_model(row, markets.get((row["venue"], row["market_id"]))))
        return out, down

    async def _position_model(self, row: Any, market: MarketInfo | None) -> PredictionPosition:
        qty, avg = _d(row["qty"]), _d(row["avg_price"])
        mark: Decimal | None = None
        source = marked_at = None
        if row["status"] == "open":
            if market is not None:
                bid = market.yes_bid if row["side"] == "yes" else (1 - market.yes_ask if market.yes_ask else None)
                if bid is not None:
                    mark, marked_at = bid, market.fetched_at
                    source = f"{market.venue} market quote ({row['side']} bid)"
            if mark is None:
                async with self.db.connect() as conn:
                    snap = (
                        (await conn.execute(self.latest_snapshot_query(row["venue"], row["market_id"], row["side"])))
                        .mappings()
                        .first()
                    )
                if snap is not None and snap["best_bid"] is not None:
                    mark, marked_at = _d(snap["best_bid"]), _aware(snap["fetched_at"])
                    source = f"last stored {row['venue']} book snapshot (may be stale)"
        return PredictionPosition(
            venue=row["venue"],
            market_id=row["market_id"],
            title=row.get("title"),
            side=row["side"],
            qty=qty,
            avg_price=avg,
            fees=_d(row["fees"]),
            realized_pnl=_d(row["realized_pnl"]),
            status=row["status"],
            resolution=row["resolution"],
            mark_price=mark,
            mark_source=source,
            marked_at=marked_at,
            unrealized_pnl=qty * (mark - avg) if mark is not None else None,
            updated_at=_aware(row["updated_at"]),
        )


def _check_same_order(row: Any, params: OrderParams) -> None:
    if (
        row["venue"] != params.venue
        or row["side"] != params.side
        or row["action"] != params.action
        or row["mode"] != params.mode
        or _d(row["count"]) != params.count
        or _d(row["limit_price"]) != params.limit_price
        or (params.venue == "kalshi" and row["market_id"] != params.market_id.strip().upper())
        or (params.market_id.strip().isdigit() and row["market_id"] != params.market_id.strip())
    ):
        raise ValidationError(
            "This idempotency_key was already used for a different prediction order; use a new key.",
            argument="idempotency_key",
        )
