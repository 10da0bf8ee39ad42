"""Circuit-breaker state in Redis (shared by replicas), in process memory while Redis does not answer.

pybreaker's own `CircuitRedisStorage` swallows every Redis error and answers "closed, no failures"
after waiting out the socket timeout on each of the several reads a breaker step makes; with Redis
frozen that is seconds per upstream call, and a breaker that can never open. `FailoverBreakerStorage`
keeps the same keys in Redis but, like the cache and the rate limits (`infra.redis_link`), switches
to an in-memory state at the first Redis failure and tries Redis again at most every
``probe_interval_s`` (one `RedisGate` for every breaker of the process). The memory state carries on
from what the breaker last saw, so failures during a Redis outage still open it.
"""

from __future__ import annotations

import calendar
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import pybreaker
import redis

T = TypeVar("T")
REDIS_DOWN_ERRORS = (redis.RedisError, OSError)


class RedisGate:
    """Whether Redis is worth asking right now (thread-safe: breaker steps run in worker threads)."""

    def __init__(self, probe_interval_s: float) -> None:
        self.probe_interval_s = probe_interval_s
        self._lock = threading.Lock()
        self._down_until = 0.0

    def open(self) -> bool:
        with self._lock:
            return time.monotonic() >= self._down_until

    def mark_down(self) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self.probe_interval_s


class FailoverBreakerStorage(pybreaker.CircuitBreakerStorage):
    """A breaker's state, counters and opening time: Redis keys ``<namespace>:pybreaker:<field>``
    (pybreaker's layout) while Redis answers, a `CircuitMemoryStorage` mirror otherwise."""

    def __init__(self, client: redis.Redis, namespace: str, gate: RedisGate) -> None:
        super().__init__("redis-failover")
        self._client = client
        self._namespace = namespace
        self._gate = gate
        self._memory = pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)

    def _key(self, field: str) -> str:
        return f"{self._namespace}:pybreaker:{field}"

    def _either(self, on_redis: Callable[[], T], in_memory: Callable[[], T]) -> T:
        if self._gate.open():
            try:
                return on_redis()
            except REDIS_DOWN_ERRORS:
                self._gate.mark_down()
        return in_memory()

    def _get_int(self, field: str) -> int:
        value = self._client.get(self._key(field))
        return int(value) if value else 0

    @property
    def state(self) -> str:
        def on_redis() -> str:
            value = self._client.get(self._key("state"))
            state = value.decode() if isinstance(value, bytes) else pybreaker.STATE_CLOSED
            self._memory.state = state
            return state

        return self._either(on_redis, lambda: str(self._memory.state))

    @state.setter
    def state(self, state: str) -> None:
        self._memory.state = state
        self._either(lambda: self._client.set(self._key("state"), str(state)), lambda: None)

    def increment_counter(self) -> None:
        self._memory.increment_counter()
        self._either(lambda: self._client.incr(self._key("fail_counter")), lambda: None)

    def reset_counter(self) -> None:
        self._memory.reset_counter()
        self._either(lambda: self._client.set(self._key("fail_counter"), 0), lambda: None)

    def increment_success_counter(self) -> None:
        self._memory.increment_success_counter()
        self._either(lambda: self._client.incr(self._key("success_counter")), lambda: None)

    def reset_success_counter(self) -> None:
        self._memory.reset_success_counter()
        self._either(lambda: self._client.set(self._key("success_counter"), 0), lambda: None)

    @property
    def counter(self) -> int:
        return self._either(lambda: self._get_int("fail_counter"), lambda: int(self._memory.counter))

    @property
    def success_counter(self) -> int:
        return self._either(lambda: self._get_int("success_counter"), lambda: int(self._memory.success_counter))

    @property
    def opened_at(self) -> datetime | None:
        def on_redis() -> datetime | None:
            stamp = self._get_int("opened_at")
            return datetime(*time.gmtime(stamp)[:6], tzinfo=UTC) if stamp else None

        return self._either(on_redis, lambda: self._memory.opened_at)

    @opened_at.setter
    def opened_at(self, now: datetime) -> None:
        self._memory.opened_at = now
        stamp = int(calendar.timegm(now.timetuple()))
        # the latest opening wins when replicas race (pybreaker's rule); Lua keeps it one round trip
        script = (
            "local c = tonumber(redis.call('GET', KEYS[1]) or '0') "
            "if tonumber(ARGV[1]) > c then redis.call('SET', KEYS[1], ARGV[1]) end"
        )
        self._either(lambda: self._client.eval(script, 1, self._key("opened_at"), stamp), lambda: None)
