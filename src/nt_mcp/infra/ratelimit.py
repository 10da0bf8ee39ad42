"""Per-principal, per-tool rate limits: a moving one-minute window with cost-weighted hits.

Built on the `limits` library. Storage is process memory by default and Redis when
``NT_REDIS_URL`` is set, so replicas on one Redis share one budget. A tool of cost ``c`` uses
``c`` units of the ``NT_RATE_LIMIT_PER_MINUTE`` budget per call.

An allowed call costs at most one storage round trip (the moving window's atomic acquire, a Lua
script in Redis); only a refused call asks for the window statistics (a second trip) to say when to
retry. With a large budget, Redis is not asked on every call: a process takes a *lease* of
``budget // LEASE_SHARE`` units in one acquire (recorded in the shared window like any hit) and spends
it locally for up to ``LEASE_TTL_S`` seconds, so at 1,000 calls/s a (principal, tool) costs about one
round trip a second instead of a thousand. The price, stated: units leased but not spent before the
lease ends still count in the window, so a principal served by ``r`` processes may be refused up to
``r / LEASE_SHARE`` of its budget early (2 % per process), and a leased unit is counted at the time of
its lease, up to ``LEASE_TTL_S`` before its call. Budgets under ``LEASE_SHARE`` units a minute (the
default, 120, leases 2) are counted call by call, exactly. Near the limit, when a lease no longer
fits, the call asks for exactly its own cost.

In process memory the window is `MemoryMovingWindow`, not the library's async ``MemoryStorage``: that
one inserts each hit at the front of a list of every hit in the window (O(n) per call, 60,000 entries
at 1,000 calls/s) and schedules an expiry task that hops to a worker thread after every call
(~150-200 us per call measured on a 2-core machine, more as the window fills).
"""

from __future__ import annotations

import functools
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.util import WindowStats

from nt_mcp.infra.redis_link import RedisLink


class WindowLimiter(Protocol):
    """The part of `limits`' async moving-window limiter the server uses (also `MemoryMovingWindow`)."""

    async def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool: ...

    async def test(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool: ...

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats: ...


@functools.lru_cache(maxsize=4096)
def _key_for(item: RateLimitItem, *identifiers: str) -> str:
    """``item.key_for(*identifiers)``, built once per (limit, principal, tool) instead of on every hit."""
    return item.key_for(*identifiers)


class MemoryMovingWindow:
    """`limits`' moving window (same answers as ``MovingWindowRateLimiter``) in process memory, O(1) per hit.

    Per key, a deque of ``[time, units]`` hits, oldest first, and their total: a hit of ``cost`` is
    allowed when the units of the last ``expiry`` seconds plus ``cost`` stay within the limit. The window
    statistics are as the library's: ``reset_time`` = the oldest hit still in the window + ``expiry``
    (now + ``expiry`` for an empty window), ``remaining`` = limit - units in the window. Keys whose hits
    all expired are dropped by a sweep at most every ``expiry`` seconds.
    """

    def __init__(self) -> None:
        self._windows: dict[str, tuple[deque[list[float]], list[int]]] = {}  # key -> (hits, [total])
        self._next_sweep = 0.0

    def _window(self, key: str, expiry: int, now: float) -> tuple[deque[list[float]], list[int]]:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = (deque(), [0])
        hits, total = window
        cutoff = now - expiry
        while hits and hits[0][0] < cutoff:  # as the library: a hit exactly `expiry` old still counts
            total[0] -= int(hits.popleft()[1])
        if now >= self._next_sweep:
            self._sweep(cutoff, keep=key)
            self._next_sweep = now + expiry
        return window

    def _sweep(self, cutoff: float, keep: str) -> None:
        for key in [k for k, (hits, _) in self._windows.items() if k != keep and (not hits or hits[-1][0] < cutoff)]:
            del self._windows[key]

    async def hit(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        now = time.time()
        hits, total = self._window(_key_for(item, *identifiers), item.get_expiry(), now)
        if cost > item.amount or total[0] + cost > item.amount:
            return False
        if hits and hits[-1][0] == now:
            hits[-1][1] += cost
        else:
            hits.append([now, cost])
        total[0] += cost
        return True

    async def test(self, item: RateLimitItem, *identifiers: str, cost: int = 1) -> bool:
        _, total = self._window(_key_for(item, *identifiers), item.get_expiry(), time.time())
        return total[0] <= item.amount - cost

    async def get_window_stats(self, item: RateLimitItem, *identifiers: str) -> WindowStats:
        now = time.time()
        hits, total = self._window(_key_for(item, *identifiers), item.get_expiry(), now)
        start = hits[0][0] if hits else now
        return WindowStats(start + item.get_expiry(), item.amount - total[0])


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float


ALLOWED = Decision(True, 0.0)
LEASE_SHARE = 50  # a lease is 1/50 of the per-minute budget
LEASE_TTL_S = 1.0  # and lives one second
_MAX_LEASES = 4096  # (principal, tool) leases kept before expired ones are dropped
_TIGHT = -1.0  # a lease's units when none fitted in the window: calls ask for their exact cost


class RateLimiter:
    """Moving-window limits in Redis when a `RedisLink` is given (memory while it is down), else memory."""

    def __init__(self, per_minute: int, link: RedisLink | None = None) -> None:
        self.backend = "redis" if link is not None else "memory"
        self._link = link
        self._memory = MemoryMovingWindow()
        self._redis: MovingWindowRateLimiter | None = None
        if link is not None:
            storage = RedisStorage(
                f"async+{link.url}", implementation="redispy", socket_timeout=1.0, socket_connect_timeout=1.0
            )
            self._redis = MovingWindowRateLimiter(storage)
        self.item: RateLimitItem = RateLimitItemPerMinute(per_minute)
        self.lease_units = per_minute // LEASE_SHARE
        self._leases: dict[tuple[str, str], list[float]] = {}  # (principal, tool) -> [units left, until]

    async def _hit(self, limiter: WindowLimiter, principal: str, tool: str, cost: int) -> Decision:
        if await limiter.hit(self.item, principal, tool, cost=cost):
            return Decision(True, 0.0)
        stats = await limiter.get_window_stats(self.item, principal, tool)
        return Decision(False, max(0.0, stats.reset_time - time.time()))

    async def hit(self, principal: str, tool: str, cost: int = 1) -> Decision:
        """Spend ``cost`` units of ``principal``'s budget for ``tool``; refuse when it is spent."""
        if self._link is None or self._redis is None:
            return await self._hit(self._memory, principal, tool, cost)
        lease = self._leases.get((principal, tool))
        if lease is not None and lease[0] >= cost and time.monotonic() < lease[1]:
            lease[0] -= cost
            return ALLOWED
        redis_limiter = self._redis
        return await self._link.run(
            lambda: self._hit_leasing(redis_limiter, principal, tool, cost),
            lambda: self._hit(self._memory, principal, tool, cost),
        )

    async def _hit_leasing(self, limiter: WindowLimiter, principal: str, tool: str, cost: int) -> Decision:
        """Acquire a lease of ``lease_units`` (at least ``cost``) and spend ``cost`` of it; when the
        lease does not fit in the window (or is no bigger than ``cost``), acquire exactly ``cost``."""
        key = (principal, tool)
        held = self._leases.get(key)
        tight = held is not None and held[0] == _TIGHT and time.monotonic() < held[1]
        size = max(cost, self.lease_units)
        if size > cost and not tight:
            if await limiter.hit(self.item, principal, tool, cost=size):
                self._keep(key, size - cost)
                return ALLOWED
            self._keep(key, _TIGHT)  # no lease fits: ask for exact costs until this one would have ended
        return await self._hit(limiter, principal, tool, cost)

    def _keep(self, key: tuple[str, str], units: float) -> None:
        if len(self._leases) >= _MAX_LEASES:
            now = time.monotonic()
            self._leases = {held_key: held for held_key, held in self._leases.items() if held[1] > now}
        self._leases[key] = [units, time.monotonic() + LEASE_TTL_S]
