"""Per-principal, per-tool rate limits: a moving one-minute window with cost-weighted hits.

Built on the `limits` library. Storage is process memory by default and Redis when
``NT_REDIS_URL`` is set, so replicas on one Redis share one budget. A tool of cost ``c`` uses
``c`` units of the ``NT_RATE_LIMIT_PER_MINUTE`` budget per call.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter


@dataclass(frozen=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after_s: float


class RateLimiter:
    def __init__(self, per_minute: int, redis_url: str | None = None) -> None:
        self.backend = "redis" if redis_url else "memory"
        self.storage: Storage = (
            RedisStorage(f"async+{redis_url}", implementation="redispy") if redis_url else MemoryStorage()
        )
        self._limiter = MovingWindowRateLimiter(self.storage)
        self.item: RateLimitItem = RateLimitItemPerMinute(per_minute)

    async def hit(self, principal: str, tool: str, cost: int = 1) -> Decision:
        """Spend ``cost`` units of ``principal``'s budget for ``tool``; refuse when it is spent."""
        allowed = await self._limiter.hit(self.item, principal, tool, cost=cost)
        stats = await self._limiter.get_window_stats(self.item, principal, tool)
        retry_after = 0.0 if allowed else max(0.0, stats.reset_time - time.time())
        return Decision(allowed, stats.remaining, retry_after)

    async def reset(self) -> None:
        await self.storage.reset()
