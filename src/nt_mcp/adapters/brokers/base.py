"""The one async `Broker` protocol every broker implements, and the typed values it speaks.

Money, prices and quantities are `Decimal` (parsed from the broker's strings, never via float);
in tool results they serialise as decimal strings (pydantic's JSON mode), so nothing is rounded
on the way to the agent. Timestamps are timezone-aware UTC.

Every method takes the ``principal``: the paper broker keeps one account per principal; Alpaca has
one account (the configured keys) shared by every principal of this server.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol

from pydantic import BaseModel, Field, field_validator

from nt_mcp.adapters.data.market import Quote

OrderSide = Literal["buy", "sell"]
OrderType = Literal["market", "limit", "stop", "stop_limit", "trailing_stop"]
TimeInForce = Literal["day", "gtc", "opg", "cls", "ioc", "fok"]
OrderStatusFilter = Literal["open", "closed", "all"]

# Statuses of an order that may still fill (Alpaca's names; the paper broker uses a subset).
OPEN_STATUSES = frozenset(
    {"pending_submit", "new", "accepted", "pending_new", "partially_filled", "held", "accepted_for_bidding",
     "pending_cancel", "pending_replace", "calculated", "done_for_day"}
)  # fmt: skip


def client_order_id_for(principal: str, idempotency_key: str) -> str:
    """The deterministic client order id of ``idempotency_key`` for ``principal``:
    ``"nt-" + sha256(principal + ":" + idempotency_key)[:24]`` (27 characters, within Alpaca's 128).
    The same principal and key always give the same id, so a retry can never become a second order."""
    digest = hashlib.sha256(f"{principal}:{idempotency_key}".encode()).hexdigest()
    return f"nt-{digest[:24]}"


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class BracketLeg:
    """One exit leg of a bracket order: the take-profit limit, or the stop-loss stop (and limit)."""

    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True)
class OrderRequest:
    """A validated order, ready for a broker. Exactly one of ``qty`` and ``notional`` is set."""

    symbol: str
    side: OrderSide
    type: OrderType
    time_in_force: TimeInForce
    client_order_id: str
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    take_profit: BracketLeg | None = None
    stop_loss: BracketLeg | None = None

    @property
    def order_class(self) -> Literal["simple", "bracket"]:
        return "bracket" if self.take_profit is not None or self.stop_loss is not None else "simple"


def tidy(value: Decimal) -> Decimal:
    """``Decimal("100.0000000000")`` -> ``Decimal("100")``, never exponent notation."""
    if not value.is_finite():
        return value
    return value.quantize(Decimal(1)) if value == value.to_integral_value() else value.normalize()


class BrokerModel(BaseModel):
    """Decimals without storage padding: 100, not 100.0000000000."""

    @field_validator("*", mode="after")
    @classmethod
    def _tidy(cls, value: object) -> object:
        return tidy(value) if isinstance(value, Decimal) else value


class Order(BrokerModel):
    """An order as the broker sees it. ``id`` is the broker's order id (use it with get_order and
    cancel_order); ``client_order_id`` is the deterministic id this server derived from the
    idempotency key."""

    id: str
    client_order_id: str
    symbol: str
    side: str
    type: str
    order_class: str = "simple"
    time_in_force: str
    qty: Decimal | None = None
    notional: Decimal | None = None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    trail_percent: Decimal | None = None
    status: str
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: Decimal | None = None
    commission: Decimal | None = Field(None, description="paper broker only: commission charged")
    created_at: datetime
    updated_at: datetime | None = None
    filled_at: datetime | None = None
    reject_reason: str | None = None
    legs: list[Order] = Field(default_factory=list)
    notes: list[str] = Field(
        default_factory=list, description="paper broker: what the simulation assumed, e.g. the borrow terms of a short"
    )

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class Position(BrokerModel):
    symbol: str
    qty: Decimal = Field(description="signed: negative is short")
    side: Literal["long", "short"]
    avg_entry_price: Decimal
    current_price: Decimal | None
    market_value: Decimal | None
    cost_basis: Decimal
    unrealized_pl: Decimal | None
    realized_pl: Decimal | None = Field(None, description="paper broker only: realised P&L of this symbol")
    short_borrow: str | None = Field(None, description="paper broker, short positions: the borrow terms assumed")


class Account(BrokerModel):
    equity: Decimal
    cash: Decimal
    buying_power: Decimal
    day_start_equity: Decimal = Field(description="equity at the previous session's close (see day_start_basis)")
    day_pl: Decimal = Field(description="equity - day_start_equity: realised and unrealised")
    day_start_basis: str = Field("", description="where day_start_equity comes from")
    realized_pl: Decimal | None = Field(None, description="paper broker only: since the account opened")
    starting_cash: Decimal | None = Field(None, description="paper broker only")
    currency: str = "USD"
    status: str = "ACTIVE"
    trading_blocked: bool = False


class Clock(BrokerModel):
    timestamp: datetime
    is_open: bool
    next_open: datetime
    next_close: datetime


class Broker(Protocol):
    """What every broker does. Implementations raise the typed errors of `nt_mcp.errors`:
    `NotFoundError` for an unknown order or position, `ValidationError` for an order the broker
    refuses as malformed, `BusinessLogicError` for a rule (buying power), `RateLimitError`,
    `ExternalAPIError` (retryable for 5xx) and `NetworkError` when the outcome is unknown."""

    name: str

    async def get_account(self, principal: str) -> Account: ...
    async def get_positions(self, principal: str) -> list[Position]: ...
    async def get_orders(self, principal: str, status: OrderStatusFilter, limit: int) -> list[Order]: ...
    async def get_order(self, principal: str, order_id: str) -> Order: ...
    async def get_order_by_client_id(self, principal: str, client_order_id: str) -> Order: ...
    async def submit_order(self, principal: str, request: OrderRequest) -> Order: ...
    async def cancel_order(self, principal: str, order_id: str) -> Order: ...
    async def get_clock(self) -> Clock: ...
    async def latest_quote(self, symbol: str) -> Quote: ...
    async def check_symbol(self, symbol: str) -> None:
        """Raise `ValidationError` (argument ``symbol``) when the broker cannot trade ``symbol``."""
        ...

    async def close(self) -> None: ...
