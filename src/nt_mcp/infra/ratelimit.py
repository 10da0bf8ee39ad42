"""Per-principal, per-tool rate limits: a moving one-minute window with cost-weighted hits.

Built on the `limits` library. Storage is process memory by default and Redis when
``NT_REDIS_URL`` is set, so replicas on one Redis share one budget. A tool of cost ``c`` uses
``c`` units of the ``NT_RATE_LIMIT_PER_MINUTE`` budget per call.

An allowed call costs one storage round trip (the moving window's atomic acquire, a Lua script in
Redis); only a refused call asks for the window statistics (a second trip) to say when to retry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from nt_mcp.infra.redis_link import RedisLink


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float


class RateLimiter:
    """Moving-window limits in Redis when a `RedisLink` is given (memory while it is down), else memory."""

    def __init__(self, per_minute: int, link: RedisLink | None = None) -> None:
        self.backend = "redis" if link is not None else "memory"
        self._link = link
        self._memory = MovingWindowRateLimiter(MemoryStorage())
        self._redis: MovingWindowRateLimiter | None = None
        if link is not None:
            storage = RedisStorage(
                f"async+{link.url}", implementation="redispy", socket_timeout=1.0, socket_connect_timeout=1.0
            )
            self._redis = MovingWindowRateLimiter(storage)
        self.item: RateLimitItem = RateLimitItemPerMinute(per_minute)

    async def _hit(self, limiter: MovingWindowRateLimiter, principal: str, tool: str, cost: int) -> Decision:
        if await limiter.hit(self.item, principal, tool, cost=cost):
            return Decision(True, 0.0)
        stats = await limiter.get_window_stats(self.item, principal, tool)
        return Decision(False, max(0.0, stats.reset_time - time.time()))

    async def hit(self, principal: str, tool: str, cost: int = 1) -> Decision:
        """Spend ``cost`` units of ``principal``'s budget for ``tool``; refuse when it is spent."""
        if self._link is None or self._redis is None:
            return await self._hit(self._memory, principal, tool, cost)
        redis_limiter = self._redis
        return await self._link.run(
            lambda: self._hit(redis_limiter, principal, tool, cost),
            lambda: self._hit(self._memory, principal, tool, cost),
        )
