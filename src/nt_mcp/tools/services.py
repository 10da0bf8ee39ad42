"""The long-lived things tools use, opened once when the server starts and closed when it stops."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from nt_mcp import __version__
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
    version: str = __version__
    started_monotonic: float = field(default_factory=time.monotonic)

    @classmethod
    async def start(cls, settings: Settings) -> Services:
        """Open storage (migrating it when ``NT_AUTO_MIGRATE`` is on), cache and rate limiter."""
        db = Database(settings)
        if settings.auto_migrate:
            await migrate.upgrade(db)
        return cls(
            settings=settings,
            db=db,
            cache=build_cache(settings.redis_url, settings.cache_default_ttl_s),
            limiter=RateLimiter(settings.rate_limit_per_minute, settings.redis_url),
            audit=AuditLog(db),
        )

    @property
    def uptime_s(self) -> float:
        return time.monotonic() - self.started_monotonic

    async def close(self) -> None:
        await self.cache.close()
        await self.db.dispose()
