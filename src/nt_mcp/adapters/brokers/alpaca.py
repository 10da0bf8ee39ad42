"""`AlpacaBroker`: Alpaca's trading API through alpaca-py's `TradingClient`.

The client talks to the paper endpoint unless the server runs in live mode (``NT_TRADING_MODE=live``
and ``NT_LIVE_TRADING_ACKNOWLEDGED=true``): ``TradingClient(key, secret, paper=not live)``. It is
built with ``raw_data=True`` so we parse Alpaca's documented JSON ourselves, money as `Decimal` from
Alpaca's strings. Orders are sent with alpaca-py's typed request models (market, limit, stop,
stop_limit, trailing_stop; bracket = take_profit + stop_loss); note alpaca-py's request models carry
prices and quantities as floats, so they are converted at that last step.

Every call runs in a worker thread (`call_alpaca`). Alpaca's 422 "client_order_id must be unique"
on submit means the order already exists: it is looked up by client_order_id and returned.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, QueryOrderStatus
from alpaca.trading.enums import OrderSide as AlpacaSide
from alpaca.trading.enums import TimeInForce as AlpacaTif
from alpaca.trading.requests import (
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)
from alpaca.trading.requests import OrderRequest as AlpacaOrderRequest

from nt_mcp.adapters.alpaca_common import (
    api_error_message,
    api_error_status,
    call_alpaca,
    disable_internal_retries,
)
from nt_mcp.adapters.brokers.base import (
    Account,
    Clock,
    Order,
    OrderRequest,
    OrderStatusFilter,
    Position,
)
from nt_mcp.adapters.data.market import MarketData, Quote, to_decimal
from nt_mcp.errors import NotFoundError, ValidationError
from nt_mcp.infra.resilience import Upstreams

SERVICE = "alpaca-trading"


def build_trading_client(
    api_key: str, secret_key: str, *, live: bool, url_override: str | None = None
) -> TradingClient:
    """The alpaca-py client: the paper endpoint unless ``live``; alpaca-py's sleeping retries off."""
    client = TradingClient(api_key, secret_key, paper=not live, raw_data=True, url_override=url_override)
    disable_internal_retries(client)
    return client


def _ts(value: Any) -> datetime | None:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None


def _dec(value: Any) -> Decimal:
    parsed = to_decimal(value)
    return parsed if parsed is not None else Decimal(0)


def order_from_alpaca(body: dict[str, Any]) -> Order:
    """Alpaca's order object (GET/POST /v2/orders) as an `Order`."""
    created = _ts(body.get("created_at") or body.get("submitted_at"))
    return Order(
        id=str(body["id"]),
        client_order_id=str(body["client_order_id"]),
        symbol=str(body["symbol"]),
        side=str(body["side"]),
        type=str(body.get("type") or body.get("order_type")),
        order_class=str(body.get("order_class") or "simple"),
        time_in_force=str(body["time_in_force"]),
        qty=to_decimal(body.get("qty")),
        notional=to_decimal(body.get("notional")),
        limit_price=to_decimal(body.get("limit_price")),
        stop_price=to_decimal(body.get("stop_price")),
        trail_percent=to_decimal(body.get("trail_percent")),
        status=str(body["status"]),
        filled_qty=_dec(body.get("filled_qty")),
        filled_avg_price=to_decimal(body.get("filled_avg_price")),
        created_at=created or datetime.fromtimestamp(0).astimezone(),
        updated_at=_ts(body.get("updated_at")),
        filled_at=_ts(body.get("filled_at")),
        legs=[order_from_alpaca(leg) for leg in body.get("legs") or []],
    )


def position_from_alpaca(body: dict[str, Any]) -> Position:
    qty = _dec(body.get("qty"))
    side = str(body.get("side") or ("short" if qty < 0 else "long"))
    if side == "short" and qty > 0:
        qty = -qty
    return Position(
        symbol=str(body["symbol"]),
        qty=qty,
        side="short" if side == "short" else "long",
        avg_entry_price=_dec(body.get("avg_entry_price")),
        current_price=to_decimal(body.get("current_price")),
        market_value=to_decimal(body.get("market_value")),
        cost_basis=_dec(body.get("cost_basis")),
        unrealized_pl=to_decimal(body.get("unrealized_pl")),
    )


def account_from_alpaca(body: dict[str, Any]) -> Account:
    equity = _dec(body.get("equity"))
    last_equity = to_decimal(body.get("last_equity"))
    day_start = last_equity if last_equity is not None else equity
    basis = (
        "Alpaca's last_equity: the account's equity at the previous trading day's close"
        if last_equity is not None
        else "Alpaca sent no last_equity: the current equity stands in (day P&L 0)"
    )
    return Account(
        equity=equity,
        cash=_dec(body.get("cash")),
        buying_power=_dec(body.get("buying_power")),
        day_start_equity=day_start,
        day_pl=equity - day_start,
        day_start_basis=basis,
        currency=str(body.get("currency") or "USD"),
        status=str(body.get("status") or "ACTIVE"),
        trading_blocked=bool(body.get("trading_blocked") or body.get("account_blocked")),
    )


def _f(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def alpaca_order_request(request: OrderRequest) -> AlpacaOrderRequest:
    """Our `OrderRequest` as alpaca-py's typed request model for its order kind."""
    common: dict[str, Any] = {
        "symbol": request.symbol,
        "side": AlpacaSide(request.side),
        "time_in_force": AlpacaTif(request.time_in_force),
        "client_order_id": request.client_order_id,
        "qty": _f(request.qty),
        "notional": _f(request.notional),
    }
    if request.order_class == "bracket":
        common["order_class"] = OrderClass.BRACKET
        if request.take_profit is not None and request.take_profit.limit_price is not None:
            common["take_profit"] = TakeProfitRequest(limit_price=float(request.take_profit.limit_price))
        if request.stop_loss is not None and request.stop_loss.stop_price is not None:
            common["stop_loss"] = StopLossRequest(
                stop_price=float(request.stop_loss.stop_price), limit_price=_f(request.stop_loss.limit_price)
            )
    kind = request.type
    if kind == "market":
        return MarketOrderRequest(**common)
    if kind == "limit":
        return LimitOrderRequest(**common, limit_price=_f(request.limit_price))
    if kind == "stop":
        return StopOrderRequest(**common, stop_price=_f(request.stop_price))
    if kind == "stop_limit":
        return StopLimitOrderRequest(**common, stop_price=_f(request.stop_price), limit_price=_f(request.limit_price))
    return TrailingStopOrderRequest(**common, trail_percent=_f(request.trail_percent))


def _is_duplicate_client_order_id(error: APIError) -> bool:
    message = api_error_message(error).lower()
    return api_error_status(error) == 422 and "client_order_id" in message and "unique" in message


class AlpacaBroker:
    """One Alpaca account (the configured keys), shared by every principal of this server."""

    name = "alpaca"

    def __init__(self, client: TradingClient, market_data: MarketData, upstreams: Upstreams | None = None) -> None:
        self.client = client
        self.market_data = market_data
        self.upstreams = upstreams
        self._tradable: dict[str, bool] = {}

    async def _call(self, call: Any, what: str, *, idempotent: bool = True) -> Any:
        return await call_alpaca(SERVICE, call, what=what, upstreams=self.upstreams, idempotent=idempotent)

    async def get_account(self, principal: str) -> Account:
        return account_from_alpaca(await self._call(self.client.get_account, "the account"))

    async def get_positions(self, principal: str) -> list[Position]:
        raw = await self._call(self.client.get_all_positions, "the positions")
        return [position_from_alpaca(p) for p in raw]

    async def get_orders(self, principal: str, status: OrderStatusFilter, limit: int) -> list[Order]:
        query = GetOrdersRequest(status=QueryOrderStatus(status), limit=limit, nested=True)
        raw = await self._call(lambda: self.client.get_orders(query), "the orders")
        return [order_from_alpaca(o) for o in raw]

    async def get_order(self, principal: str, order_id: str) -> Order:
        try:
            uuid.UUID(order_id)
        except ValueError:
            raise ValidationError(
                f"order_id {order_id!r} is not an Alpaca order id (a UUID).", argument="order_id"
            ) from None
        raw = await self._call(lambda: self.client.get_order_by_id(order_id), f"order {order_id}")
        return order_from_alpaca(raw)

    async def get_order_by_client_id(self, principal: str, client_order_id: str) -> Order:
        raw = await self._call(lambda: self.client.get_order_by_client_id(client_order_id), f"order {client_order_id}")
        return order_from_alpaca(raw)

    async def submit_order(self, principal: str, request: OrderRequest) -> Order:
        payload = alpaca_order_request(request)

        def send() -> dict[str, Any] | None:
            try:
                return self.client.submit_order(payload)  # type: ignore[return-value]
            except APIError as error:
                if _is_duplicate_client_order_id(error):
                    return None  # Alpaca already has this client_order_id: that order is ours
                raise

        # Not retried here: an unknown outcome is resolved by looking the client_order_id up (OrderRouter),
        # never by sending again. The breaker still sees the call.
        raw = await self._call(send, f"the order {request.client_order_id}", idempotent=False)
        if raw is None:
            return await self.get_order_by_client_id(principal, request.client_order_id)
        return order_from_alpaca(raw)

    async def cancel_order(self, principal: str, order_id: str) -> Order:
        await self.get_order(principal, order_id)  # validates the id; NOT_FOUND when unknown
        await self._call(lambda: self.client.cancel_order_by_id(order_id), f"cancelling order {order_id}")
        return await self.get_order(principal, order_id)

    async def get_clock(self) -> Clock:
        raw = await self._call(self.client.get_clock, "the market clock")
        return Clock(
            timestamp=_ts(raw["timestamp"]),
            is_open=bool(raw["is_open"]),
            next_open=_ts(raw["next_open"]),
            next_close=_ts(raw["next_close"]),
        )

    async def check_symbol(self, symbol: str) -> None:
        if symbol not in self._tradable:
            try:
                asset = await self._call(lambda: self.client.get_asset(symbol), f"asset {symbol}")
            except NotFoundError:
                raise ValidationError(
                    f"Unknown symbol {symbol!r}: Alpaca has no such asset.", argument="symbol"
                ) from None
            self._tradable[symbol] = bool(asset.get("tradable")) and asset.get("status") == "active"
        if not self._tradable[symbol]:
            raise ValidationError(f"{symbol} is not tradable at Alpaca.", argument="symbol")

    async def latest_quote(self, symbol: str) -> Quote:
        return await self.market_data.latest_quote(symbol)

    async def close(self) -> None:
        await asyncio.to_thread(self.client._session.close)
