"""Test doubles for the outside world that are not HTTP: a price feed the test sets by hand.

The paper broker's logic under test is real; only the price it reads is chosen by the test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from nt_mcp.adapters.brokers.paper import PaperBroker, PaperConfig
from nt_mcp.adapters.data.market import Quote
from nt_mcp.domain.risk_limits import RiskLimits
from nt_mcp.errors import NotFoundError
from nt_mcp.services.order_router import OrderRouter
from nt_mcp.services.strategy_executor import StrategyExecutor
from nt_mcp.tools.services import Services


class SetPrices:
    """A `MarketData` whose latest price per symbol is whatever the test last set."""

    source = "test-prices"

    def __init__(self, **prices: str | Decimal) -> None:
        self.prices = {symbol: Decimal(str(price)) for symbol, price in prices.items()}
        self.requests = 0

    def set(self, symbol: str, price: str | Decimal) -> None:
        self.prices[symbol] = Decimal(str(price))

    async def latest_quote(self, symbol: str) -> Quote:
        self.requests += 1
        if symbol not in self.prices:
            raise NotFoundError(f"no test price for {symbol}")
        return Quote(symbol, self.prices[symbol], None, None, datetime.now(UTC), self.source)


def use_paper_prices(
    services: Services, prices: SetPrices, config: PaperConfig | None = None, limits: RiskLimits | None = None
) -> PaperBroker:
    """Point ``services`` at a paper broker priced by ``prices`` (same storage, same settings)."""
    broker = PaperBroker(services.db, prices, config or PaperConfig(slippage_bps=Decimal(0)))
    services.market_data = prices
    services.broker = broker
    services.orders = OrderRouter(
        services.db, broker, limits or RiskLimits(enforce_market_hours=False), services.settings.mode, services.writer
    )
    services.executor = StrategyExecutor(services.db, services.writer, services.orders, prices, services.settings.mode)
    return broker
