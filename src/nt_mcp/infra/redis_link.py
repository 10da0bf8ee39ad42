"""Whether Redis answers, and the switch to process memory while it does not.

Cache and rate limits run their Redis operation through `RedisLink.run(primary, fallback)`.
Any Redis failure (refused, reset, timed out because it is frozen, loading, read-only, out of
memory: ``RedisError`` or an OS error) marks Redis down: from then on the in-process fallback answers at
once, and Redis is tried again at most every ``NT_REDIS_PROBE_INTERVAL_S``; the first success
switches back by itself. While Redis is down, `server_status` and `/health/ready` say
``degraded`` with the reason, and replicas stop sharing one rate-limit budget (each counts its own).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from nt_mcp.infra.observability import REDIS_DEGRADED

log = logging.getLogger(__name__)
T = TypeVar("T")
# Any failure of Redis itself: refused, reset, timed out (frozen), loading, read-only, out of memory, ...
# The cache and the limits are helpers, so every Redis failure means "use process memory for now".
REDIS_DOWN_ERRORS = (RedisError, OSError)


class RedisLink:
    def __init__(self, url: str, probe_interval_s: float = 1.0) -> None:
        self.url = url
        self.probe_interval_s = probe_interval_s
        self.client = aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self.down_since: datetime | None = None
        self.reason: str | None = None
        self._next_try = 0.0

    @property
    def healthy(self) -> bool:
        return self.down_since is None

    def describe(self) -> str | None:
        """Why the server is degraded because of Redis, or None when Redis is fine."""
        if self.down_since is None:
            return None
        return (
            f"Redis unreachable since {self.down_since.isoformat(timespec='seconds')} ({self.reason}); "
            "cache and rate limits are in process memory"
        )

    def mark_down(self, error: BaseException) -> None:
        self._next_try = time.monotonic() + self.probe_interval_s
        self.reason = type(error).__name__
        if self.down_since is None:
            self.down_since = datetime.now(UTC)
            REDIS_DEGRADED.set(1)
            log.warning("Redis unreachable: falling back to process memory", extra={"error": self.reason})

    def mark_up(self) -> None:
        if self.down_since is not None:
            log.warning("Redis is back: cache and rate limits use it again")
            self.down_since, self.reason = None, None
            REDIS_DEGRADED.set(0)

    async def run(self, primary: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]) -> T:
        """``primary()`` on Redis, or ``fallback()`` while Redis is down."""
        if self.down_since is None or time.monotonic() >= self._next_try:
            try:
                result = await primary()
            except REDIS_DOWN_ERRORS as error:
                self.mark_down(error)
            else:
                self.mark_up()
                return result
        return await fallback()

    async def probe(self) -> bool:
        """Ping Redis now, whatever the probe interval, and record the answer."""
        try:
            await self.client.ping()
        except REDIS_DOWN_ERRORS as error:
            self.mark_down(error)
            return False
        self.mark_up()
        return True

    async def close(self) -> None:
        await self.client.aclose()
