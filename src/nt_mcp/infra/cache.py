"""An async key-value cache with TTLs: Redis when ``NT_REDIS_URL`` is set, process memory otherwise.

Values are JSON-serialisable. `Cache.get_or_load` adds single-flight de-duplication: while one
caller is loading a key, concurrent callers missing the same key wait for that load instead of
calling upstream themselves (N concurrent identical misses -> 1 upstream call). Single-flight is
per process; with several replicas on one Redis, each replica loads at most once per miss.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from nt_mcp.infra.observability import CACHE_EVENTS
from nt_mcp.infra.redis_link import RedisLink


class CacheBackend(Protocol):
    name: str

    async def get(self, key: str) -> str | None: ...
    async def set(self, key: str, value: str, ttl_s: float) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def ping(self) -> bool: ...
    async def close(self) -> None: ...


class MemoryBackend:
    """A dict with expiry times; expired entries are dropped when read or when the dict grows."""

    name = "memory"

    def __init__(self, max_entries: int = 10_000) -> None:
        self._data: dict[str, tuple[float, str]] = {}
        self._max_entries = max_entries

    async def get(self, key: str) -> str | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if expires_at <= time.monotonic():
            self._data.pop(key, None)
            return None
        return value

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        if len(self._data) >= self._max_entries:
            now = time.monotonic()
            for stale in [k for k, (exp, _) in self._data.items() if exp <= now]:
                del self._data[stale]
            while len(self._data) >= self._max_entries:  # still full: evict the oldest inserted
                del self._data[next(iter(self._data))]
        self._data[key] = (time.monotonic() + ttl_s, value)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        self._data.clear()


class RedisBackend:
    """Redis strings with ``PX`` expiry under a key prefix; process memory while Redis is down.

    Entries written to memory during an outage stay there (and expire there); once Redis is back,
    reads and writes go to Redis again.
    """

    name = "redis"

    def __init__(self, link: RedisLink, prefix: str = "nt-mcp:cache:") -> None:
        self._link = link
        self._redis = link.client
        self._prefix = prefix
        self._memory = MemoryBackend()

    async def get(self, key: str) -> str | None:
        async def remote() -> str | None:
            value = await self._redis.get(self._prefix + key)
            return value.decode() if isinstance(value, bytes) else value

        return await self._link.run(remote, lambda: self._memory.get(key))

    async def set(self, key: str, value: str, ttl_s: float) -> None:
        async def remote() -> None:
            await self._redis.set(self._prefix + key, value, px=max(1, int(ttl_s * 1000)))

        await self._link.run(remote, lambda: self._memory.set(key, value, ttl_s))

    async def delete(self, key: str) -> None:
        async def remote() -> None:
            await self._redis.delete(self._prefix + key)

        await self._memory.delete(key)
        await self._link.run(remote, _nothing)

    async def ping(self) -> bool:
        return await self._link.probe()

    async def close(self) -> None:
        await self._memory.close()


async def _nothing() -> None:
    return None


class Cache:
    """JSON values over a backend, with single-flight loading."""

    def __init__(self, backend: CacheBackend, default_ttl_s: float = 60.0) -> None:
        self.backend = backend
        self.default_ttl_s = default_ttl_s
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    @property
    def name(self) -> str:
        return self.backend.name

    async def get(self, key: str) -> Any | None:
        raw = await self.backend.get(key)
        CACHE_EVENTS.labels(self.backend.name, "hit" if raw is not None else "miss").inc()
        return None if raw is None else json.loads(raw)

    async def set(self, key: str, value: Any, ttl_s: float | None = None) -> None:
        await self.backend.set(key, json.dumps(value), self.default_ttl_s if ttl_s is None else ttl_s)

    async def delete(self, key: str) -> None:
        await self.backend.delete(key)

    async def get_or_load(self, key: str, loader: Callable[[], Awaitable[Any]], ttl_s: float | None = None) -> Any:
        """The cached value for ``key``, or ``await loader()`` stored for ``ttl_s``.

        Concurrent misses on one key share one ``loader`` call; if it raises, every waiter gets
        the same exception and nothing is cached.
        """
        cached = await self.get(key)
        if cached is not None:
            return cached
        pending = self._inflight.get(key)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if pending.cancelled() and task is not None and not task.cancelling():
                    return await self.get_or_load(key, loader, ttl_s)  # the loader's caller went away
                raise
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await loader()
            await self.set(key, value, ttl_s)
            future.set_result(value)
            return value
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            future.exception()  # mark retrieved: waiters re-raise it, no "never retrieved" warning
            raise
        finally:
            del self._inflight[key]

    async def ping(self) -> bool:
        return await self.backend.ping()

    async def close(self) -> None:
        await self.backend.close()


def build_cache(link: RedisLink | None, default_ttl_s: float) -> Cache:
    backend: CacheBackend = RedisBackend(link) if link is not None else MemoryBackend()
    return Cache(backend, default_ttl_s)
