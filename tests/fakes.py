"""Test doubles for the outside world that are not HTTP: a price feed the test sets by hand, and a
broker wrapper that counts (and can slow down) submissions.

The paper broker's logic under test is real; only the price it reads is chosen by the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import numpy as np

from nt_mcp.adapters.brokers.base import Broker, Order, OrderRequest
from nt_mcp.adapters.brokers.paper import PaperBroker, PaperConfig
from nt_mcp.adapters.data.market import Quote
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.risk_limits import RiskLimits
from nt_mcp.errors import NotFoundError, ValidationError
from nt_mcp.services.order_router import OrderRouter
from nt_mcp.services.strategy_executor import StrategyExecutor
from nt_mcp.tools.services import Services


class SetPrices:
    """A `MarketData` whose latest price per symbol is whatever the test last set, and whose daily
    bars are the closes the test recorded with `set_close` (one flat bar per day)."""

    source = "test-prices"

    def __init__(self, **prices: str | Decimal) -> None:
        self.prices = {symbol: Decimal(str(price)) for symbol, price in prices.items()}
        self.closes: dict[str, dict[date, float]] = {}
        self.requests = 0

    def set(self, symbol: str, price: str | Decimal) -> None:
        self.prices[symbol] = Decimal(str(price))

    def set_close(self, symbol: str, day: date, price: str | Decimal) -> None:
        self.closes.setdefault(symbol, {})[day] = float(price)

    async def latest_quote(self, symbol: str) -> Quote:
        self.requests += 1
        if symbol not in self.prices:
            raise NotFoundError(f"no test price for {symbol}")
        return Quote(symbol, self.prices[symbol], None, None, datetime.now(UTC), self.source)

    async def get_bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> Bars:
        days = sorted(d for d in self.closes.get(symbol, {}) if start.date() <= d <= end.date())
        if not days:
            raise ValidationError(f"no test bars for {symbol}", argument="symbol")
        close = np.array([self.closes[symbol][d] for d in days])
        stamps = np.array([np.datetime64(d.isoformat(), "ns") for d in days])
        return Bars(stamps, close, close, close, close, np.ones_like(close))


class CountingBroker:
    """Wraps a broker: counts `submit_order` calls and can hold each one for ``delay_s`` (a slow
    broker widens the window in which concurrent calls could send twice)."""

    def __init__(self, inner: Broker, delay_s: float = 0.0) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.submits = 0
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def submit_order(self, principal: str, request: OrderRequest) -> Order:
        self.submits += 1
        await asyncio.sleep(self.delay_s)
        return await self.inner.submit_order(principal, request)


def use_paper_prices(
    services: Services,
    prices: SetPrices,
    config: PaperConfig | None = None,
    limits: RiskLimits | None = None,
    *,
    now: Callable[[], datetime] | None = None,
    wrap: Callable[[Broker], Broker] | None = None,
) -> PaperBroker:
    """Point ``services`` at a paper broker priced by ``prices`` (same storage, same settings);
    ``now``: the broker's clock; ``wrap``: a wrapper around the broker the router sends to."""
    clock = {"now": now} if now is not None else {}
    broker = PaperBroker(services.db, prices, config or PaperConfig(slippage_bps=Decimal(0)), **clock)
    routed: Broker = wrap(broker) if wrap is not None else broker
    services.market_data = prices
    services.broker = routed
    services.orders = OrderRouter(
        services.db,
        routed,
        limits or RiskLimits(enforce_market_hours=False),
        services.settings.mode,
        services.writer,
        wait_s=services.settings.idempotency_wait_s,
    )
    services.executor = StrategyExecutor(services.db, services.writer, services.orders, prices, services.settings.mode)
    return broker
