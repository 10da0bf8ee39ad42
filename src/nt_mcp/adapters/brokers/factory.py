"""Build the broker, the market data source and the risk limits the settings ask for."""

from __future__ import annotations

from typing import Any

from nt_mcp.adapters.alpaca_common import disable_internal_retries
from nt_mcp.adapters.brokers.base import Broker
from nt_mcp.adapters.brokers.paper import PaperBroker, PaperConfig
from nt_mcp.adapters.data.market import AlpacaMarketData, MarketData, SyntheticMarketData
from nt_mcp.config import Settings
from nt_mcp.domain.risk_limits import RiskLimits
from nt_mcp.infra.db import Database
from nt_mcp.infra.resilience import Upstreams


def _keys(settings: Settings) -> tuple[str, str]:
    assert settings.alpaca_api_key is not None and settings.alpaca_secret_key is not None  # config checks
    return settings.alpaca_api_key.get_secret_value(), settings.alpaca_secret_key.get_secret_value()


def build_market_data(settings: Settings, upstreams: Upstreams) -> MarketData:
    if settings.market_data_source == "alpaca" or settings.broker == "alpaca":
        from alpaca.data.historical.stock import StockHistoricalDataClient  # ~0.7 s: only when used

        key, secret = _keys(settings)
        client = StockHistoricalDataClient(key, secret, raw_data=True, url_override=settings.alpaca_data_url)
        return AlpacaMarketData(disable_internal_retries(client), feed=settings.alpaca_data_feed, upstreams=upstreams)
    return SyntheticMarketData()


def build_trading_client(key: str, secret: str, *, live: bool, url_override: str | None = None) -> Any:
    """`nt_mcp.adapters.brokers.alpaca.build_trading_client`, imported on first use."""
    from nt_mcp.adapters.brokers.alpaca import build_trading_client as build

    return build(key, secret, live=live, url_override=url_override)


def build_broker(settings: Settings, db: Database, market_data: MarketData, upstreams: Upstreams) -> Broker:
    """Alpaca when ``NT_BROKER=alpaca`` (its paper endpoint unless the server is in live mode),
    otherwise the paper broker in this server's storage."""
    if settings.broker == "alpaca":
        from nt_mcp.adapters.brokers.alpaca import AlpacaBroker  # imports alpaca-py (~0.7 s): only when used

        key, secret = _keys(settings)
        client = build_trading_client(
            key, secret, live=settings.mode == "live", url_override=settings.alpaca_trading_url
        )
        return AlpacaBroker(client, market_data, upstreams)
    config = PaperConfig(
        starting_cash=settings.paper_starting_cash,
        slippage_bps=settings.paper_slippage_bps,
        commission_per_order=settings.paper_commission_per_order,
        commission_bps=settings.paper_commission_bps,
        allow_short=settings.paper_allow_short,
    )
    return PaperBroker(db, market_data, config)


def build_risk_limits(settings: Settings) -> RiskLimits:
    return RiskLimits(
        max_order_notional=settings.risk_max_order_notional,
        max_position_weight=settings.risk_max_position_weight,
        max_open_positions=settings.risk_max_open_positions,
        max_orders_per_day=settings.risk_max_orders_per_day,
        daily_loss_limit_pct=settings.risk_daily_loss_limit_pct,
        allowlist=settings.symbol_allowlist,
        denylist=settings.symbol_denylist,
        enforce_market_hours=not (settings.broker == "paper" and settings.paper_ignore_market_hours),
    )
