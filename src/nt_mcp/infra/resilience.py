"""Retries and circuit breakers around everything that leaves the process.

`Upstreams.call(service, fn, idempotent=...)` is the one way an adapter calls an upstream service:

1. Circuit breaker per service (pybreaker). ``NT_BREAKER_FAIL_MAX`` consecutive system failures
   open it; while open, calls fail at once with ``SERVICE_UNAVAILABLE``, the service name and
   ``retry_after_s`` (time left until the half-open probe), and nothing is sent upstream. After
   ``NT_BREAKER_RESET_TIMEOUT_S`` one probe call is let through: success closes the breaker,
   failure opens it again. Business errors (a `TradingError` that is not retryable: validation,
   a rejected order, 4xx other than 429) count as successes, so a rejected order cannot trip it.
   With ``NT_REDIS_URL`` the breaker state lives in Redis, shared by replicas, and in process
   memory while Redis does not answer (`infra.breaker_storage`). pybreaker is synchronous and the
   Redis storage does blocking I/O, so every breaker step runs in a worker thread: the event loop
   never waits on it.
2. Retry (tenacity) only when the call is idempotent (reads, and orders carrying their fixed
   client_order_id) and the error is retryable (network errors, 5xx, 429). Wait before attempt
   n+1 = max(``retry_after_s`` the upstream asked for, exponential backoff with jitter
   ``min(NT_RETRY_MAX_BACKOFF_S, NT_RETRY_BASE_S * 2**(n-1)) + U(0, NT_RETRY_BASE_S)``), bounded by
   ``NT_RETRY_MAX_ATTEMPTS`` attempts and ``NT_RETRY_MAX_TOTAL_S`` seconds of waiting in total.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import pybreaker
import redis
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from nt_mcp.config import Settings
from nt_mcp.errors import ServiceUnavailableError, TradingError
from nt_mcp.infra.breaker_storage import FailoverBreakerStorage, RedisGate
from nt_mcp.infra.observability import BREAKER_STATE, BREAKER_TRANSITIONS, RETRIES

log = logging.getLogger(__name__)
T = TypeVar("T")
_STATE_VALUES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}


def is_business_error(error: BaseException) -> bool:
    """Errors that say the upstream works and refused the request: they never trip a breaker."""
    return isinstance(error, TradingError) and not error.retryable


def is_retryable(error: BaseException) -> bool:
    return isinstance(error, TradingError) and error.retryable and not isinstance(error, ServiceUnavailableError)


class _Transitions(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any, new_state: Any) -> None:
        old = old_state.name if old_state is not None else "none"
        BREAKER_TRANSITIONS.labels(cb.name, old, new_state.name).inc()
        BREAKER_STATE.labels(cb.name).set(_STATE_VALUES.get(new_state.name, -1))
        log.warning("circuit breaker state change", extra={"service": cb.name, "from": old, "to": new_state.name})


class AsyncBreaker:
    """A pybreaker breaker driven from async code, every breaker step in a worker thread."""

    def __init__(self, breaker: pybreaker.CircuitBreaker) -> None:
        self.breaker = breaker
        self.name = str(breaker.name)

    @property
    def state(self) -> str:
        return str(self.breaker.current_state)

    def retry_after_s(self) -> float:
        opened_at = self.breaker._state_storage.opened_at  # pybreaker keeps it only there
        if opened_at is None:
            return float(self.breaker.reset_timeout)
        if opened_at.tzinfo is None:
            opened_at = opened_at.replace(tzinfo=UTC)
        left = self.breaker.reset_timeout - (datetime.now(UTC) - opened_at).total_seconds()
        return max(0.0, left)

    def _unavailable(self) -> ServiceUnavailableError:
        return ServiceUnavailableError(
            f"{self.name} is failing; calls are paused until the circuit breaker's next probe.",
            service=self.name,
            retry_after_s=self.retry_after_s(),
        )

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        step = self.breaker.calling()
        try:
            await asyncio.to_thread(step.__enter__)
        except pybreaker.CircuitBreakerError:
            raise self._unavailable() from None
        try:
            result = await fn()
        except BaseException as error:
            try:
                await asyncio.to_thread(step.__exit__, type(error), error, error.__traceback__)
            except pybreaker.CircuitBreakerError:
                pass  # this failure tripped the breaker; the caller sees the failure itself
            except BaseException as same:
                if same is not error:
                    raise
            raise
        await asyncio.to_thread(step.__exit__, None, None, None)
        return result


class Upstreams:
    """One breaker per upstream service, and the retry policy, for every outbound call."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._breakers: dict[str, AsyncBreaker] = {}
        self._redis: redis.Redis | None = (
            redis.Redis.from_url(settings.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
            if settings.redis_url
            else None
        )
        self._gate = RedisGate(settings.redis_probe_interval_s)

    def _storage(self, service: str) -> pybreaker.CircuitBreakerStorage:
        if self._redis is not None:
            return FailoverBreakerStorage(self._redis, f"nt-mcp:breaker:{service}", self._gate)
        return pybreaker.CircuitMemoryStorage(pybreaker.STATE_CLOSED)

    async def breaker(self, service: str) -> AsyncBreaker:
        existing = self._breakers.get(service)
        if existing is not None:
            return existing
        storage = self._storage(service)
        created = AsyncBreaker(
            pybreaker.CircuitBreaker(
                fail_max=self.settings.breaker_fail_max,
                reset_timeout=self.settings.breaker_reset_timeout_s,
                exclude=[is_business_error],
                listeners=[_Transitions()],
                state_storage=storage,
                name=service,
            )
        )
        return self._breakers.setdefault(service, created)

    def states(self) -> dict[str, str]:
        """Each known upstream's breaker state: closed, open or half-open."""
        return {name: b.state for name, b in sorted(self._breakers.items())}

    def _wait(self, state: RetryCallState) -> float:
        s = self.settings
        backoff = wait_exponential_jitter(multiplier=s.retry_base_s, max=s.retry_max_backoff_s, jitter=s.retry_base_s)(
            state
        )
        error = state.outcome.exception() if state.outcome is not None else None
        asked = error.retry_after_s if isinstance(error, TradingError) and error.retry_after_s else 0.0
        return max(float(asked), backoff)

    async def call(self, service: str, fn: Callable[[], Awaitable[T]], *, idempotent: bool) -> T:
        """``await fn()`` behind ``service``'s breaker, retried per the policy when ``idempotent``."""
        breaker = await self.breaker(service)
        s = self.settings
        attempts = s.retry_max_attempts if idempotent else 1

        def before_sleep(state: RetryCallState) -> None:
            RETRIES.labels(service).inc()
            log.info(
                "retrying upstream call",
                extra={
                    "service": service,
                    "attempt": state.attempt_number,
                    "sleep_s": round(state.upcoming_sleep, 3),
                },
            )

        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts) | stop_before_delay(s.retry_max_total_s),
            wait=self._wait,
            retry=retry_if_exception(is_retryable),
            before_sleep=before_sleep,
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await breaker.call(fn)
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
