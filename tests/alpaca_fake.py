"""An HTTP-level fake of Alpaca's trading and market data endpoints (requests-mock), answering with
Alpaca's documented JSON shapes and keeping its own order book, so alpaca-py runs unmodified."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests
import requests_mock

TRADING = "https://paper-api.alpaca.markets/v2"
LIVE_TRADING = "https://api.alpaca.markets/v2"
DATA = "https://data.alpaca.markets/v2"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class AlpacaFake:
    def __init__(self, mocker: requests_mock.Mocker, base: str = TRADING) -> None:
        self.mocker = mocker
        self.orders: dict[str, dict[str, Any]] = {}
        self.assets = {"AAPL", "MSFT", "SPY"}
        self.price = "187.50"
        self.market_open = True
        self.equity = "100000"
        self.last_equity = "100000"  # the equity at the previous trading day's close
        # called after the fake registered a POSTed order: raise to lose the response, or return
        # (status, body) to answer with an error although the order exists
        self.fail_next_post: Callable[[dict[str, Any]], tuple[int, dict[str, Any]] | None] | None = None
        self.accept_posts = True
        self.post_delay_s = 0.0  # a slow order endpoint (the request is registered after the delay)
        m, b = mocker, re.escape(base)
        m.get(re.compile(f"{b}/account$"), json=self._account)
        m.get(re.compile(f"{b}/positions$"), json=[])
        m.get(re.compile(f"{b}/clock$"), json=self._clock)
        m.get(re.compile(f"{b}/assets/"), json=self._asset)
        m.post(re.compile(f"{b}/orders$"), json=self._submit)
        m.get(re.compile(f"{b}/orders:by_client_order_id"), json=self._by_client_id)
        m.get(re.compile(f"{b}/orders/"), json=self._by_id)
        m.delete(re.compile(f"{b}/orders/"), json=self._cancel)
        m.get(re.compile(f"{b}/orders(\\?.*)?$"), json=self._list)
        m.get(re.compile(f"{re.escape(DATA)}/stocks/quotes/latest"), json=self._quote)

    # ---- what the tests look at ----

    def posts(self) -> int:
        return sum(1 for r in self.mocker.request_history if r.method == "POST" and r.path.endswith("/orders"))

    def trading_requests(self) -> int:
        return sum(1 for r in self.mocker.request_history if "/stocks/" not in r.path)

    # ---- handlers ----

    def _error(self, context: Any, status: int, code: int, message: str) -> dict[str, Any]:
        context.status_code = status
        return {"code": code, "message": message}

    def _account(self, request: Any, context: Any) -> dict[str, Any]:
        return {
            "id": "e6fe16f3-64a4-4921-8928-cadf02f92f98",
            "account_number": "PA3XYZ",
            "status": "ACTIVE",
            "currency": "USD",
            "cash": "100000",
            "buying_power": "400000",
            "equity": self.equity,
            "last_equity": self.last_equity,
            "portfolio_value": "100000",
            "trading_blocked": False,
            "account_blocked": False,
            "pattern_day_trader": False,
        }

    def _clock(self, request: Any, context: Any) -> dict[str, Any]:
        return {
            "timestamp": "2026-11-20T10:00:00.000-05:00",
            "is_open": self.market_open,
            "next_open": "2026-11-23T09:30:00-05:00",
            "next_close": "2026-11-20T16:00:00-05:00",
        }

    def _asset(self, request: Any, context: Any) -> dict[str, Any]:
        symbol = request.path.rsplit("/", 1)[-1].upper()
        if symbol not in self.assets:
            return self._error(context, 404, 40410000, "asset not found")
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, symbol)),
            "class": "us_equity",
            "exchange": "NASDAQ",
            "symbol": symbol,
            "name": symbol,
            "status": "active",
            "tradable": True,
            "marginable": True,
            "shortable": True,
            "fractionable": True,
        }

    def _quote(self, request: Any, context: Any) -> dict[str, Any]:
        symbol = request.qs["symbols"][0].upper()
        return {
            "quotes": {
                symbol: {"t": _now(), "ax": "V", "ap": float(self.price) + 0.02, "as": 1, "bx": "V",
                         "bp": float(self.price) - 0.02, "bs": 2, "c": ["R"], "z": "C"}
            }
        }  # fmt: skip

    def _order_json(self, body: dict[str, Any]) -> dict[str, Any]:
        now = _now()
        return {
            "id": str(uuid.uuid4()),
            "client_order_id": body.get("client_order_id") or str(uuid.uuid4()),
            "created_at": now,
            "updated_at": now,
            "submitted_at": now,
            "filled_at": None,
            "expired_at": None,
            "canceled_at": None,
            "failed_at": None,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_DNS, body["symbol"])),
            "symbol": body["symbol"],
            "asset_class": "us_equity",
            "notional": None if body.get("notional") is None else str(body["notional"]),
            "qty": None if body.get("qty") is None else str(body["qty"]),
            "filled_qty": "0",
            "filled_avg_price": None,
            "order_class": body.get("order_class") or "",
            "order_type": body["type"],
            "type": body["type"],
            "side": body["side"],
            "time_in_force": body["time_in_force"],
            "limit_price": None if body.get("limit_price") is None else str(body["limit_price"]),
            "stop_price": None if body.get("stop_price") is None else str(body["stop_price"]),
            "status": "accepted",
            "extended_hours": False,
            "legs": None,
            "trail_percent": None if body.get("trail_percent") is None else str(body["trail_percent"]),
            "trail_price": None,
            "hwm": None,
        }

    def _submit(self, request: Any, context: Any) -> dict[str, Any]:
        time.sleep(self.post_delay_s)  # requests-mock runs this in alpaca-py's worker thread
        body = json.loads(request.body)
        if any(o["client_order_id"] == body.get("client_order_id") for o in self.orders.values()):
            return self._error(context, 422, 40010001, "client_order_id must be unique")
        self.last_body = body
        if not self.accept_posts:
            return self._error(context, 503, 50300000, "service unavailable")
        order = self._order_json(body)
        self.orders[order["id"]] = order
        if self.fail_next_post is not None:
            fail, self.fail_next_post = self.fail_next_post, None
            answer = fail(order)
            if answer is not None:
                context.status_code = answer[0]
                return answer[1]
        return order

    def _by_client_id(self, request: Any, context: Any) -> dict[str, Any]:
        wanted = request.qs["client_order_id"][0]
        for order in self.orders.values():
            if order["client_order_id"].lower() == wanted.lower():
                return order
        return self._error(context, 404, 40410000, "order not found")

    def _by_id(self, request: Any, context: Any) -> dict[str, Any]:
        order = self.orders.get(request.path.rsplit("/", 1)[-1])
        return order if order else self._error(context, 404, 40410000, "order not found")

    def _cancel(self, request: Any, context: Any) -> Any:
        order = self.orders.get(request.path.rsplit("/", 1)[-1])
        if order is None:
            return self._error(context, 404, 40410000, "order not found")
        order["status"] = "canceled"
        context.status_code = 204
        return None

    def _list(self, request: Any, context: Any) -> list[dict[str, Any]]:
        return list(reversed(self.orders.values()))


def read_timeout(order: dict[str, Any]) -> None:
    raise requests.exceptions.ReadTimeout("read timed out")


def server_error(order: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return 500, {"code": 50010000, "message": "internal server error"}
