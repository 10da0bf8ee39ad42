"""The long-lived things tools use, opened once when the server starts and closed when it stops."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from nt_mcp import __version__
from nt_mcp.adapters.brokers.base import Broker
from nt_mcp.adapters.brokers.router import OrderRouter
from nt_mcp.adapters.data.market import MarketData
from nt_mcp.config import Settings
from nt_mcp.infra import migrate
from nt_mcp.infra.audit import AuditLog
from nt_mcp.infra.cache import Cache, build_cache
from nt_mcp.infra.db import Database
from nt_mcp.infra.ratelimit import RateLimiter


@dataclass
class Services:
    settings: Settings
    db: Database
    cache: Cache
    limiter: RateLimiter
    audit: AuditLog
    market_data: MarketData
    broker: Broker
    orders: OrderRouter
    version: str = __version__
    started_monotonic: float = field(default_factory=time.monotonic)

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        """Open storage (migrating it when ``NT_AUTO_MIGRATE`` is on), cache and rate limiter."""
        from nt_mcp.adapters.brokers.factory import build_broker, build_market_data, build_risk_limits

        db = Database(settings)
        if settings.auto_migrate:
            await migrate.upgrade(db)
        market_data = build_market_data(settings)
        broker = build_broker(settings, db, market_data)
        return cls(
            settings=settings,
            db=db,
            cache=build_cache(settings.redis_url, settings.cache_default_ttl_s),
            limiter=RateLimiter(settings.rate_limit_per_minute, settings.redis_url),
            audit=AuditLog(db),
            market_data=market_data,
            broker=broker,
            orders=OrderRouter(db, broker, build_risk_limits(settings), settings.mode),
        )

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic

    async def close(self) -> None:
        await self.broker.close()
        closer: Any = getattr(self.market_data, "close", None)
        if closer is not None:
            await closer()
        await self.cache.close()
        await self.db.dispose()
