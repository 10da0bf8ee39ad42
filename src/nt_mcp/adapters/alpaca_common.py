"""What every Alpaca adapter shares: building alpaca-py clients, running their synchronous calls in a
worker thread, and turning alpaca-py's `APIError` and `requests` failures into the typed errors.

alpaca-py retries 429 and 504 by itself, sleeping 3 s between attempts inside the call; our clients
switch that off (`disable_internal_retries`) so a rate limit reaches the caller at once as
`RATE_LIMITED` with ``retry_after_s`` (the resilience layer owns retries and their budget).

Mapping: 400/422 -> `ValidationError`; 403 -> `BusinessLogicError` code ``BROKER_REJECTED``
(insufficient buying power, a blocked account, ...); 404 -> `NotFoundError`; 429 -> `RateLimitError`
(``Retry-After`` or ``X-RateLimit-Reset``); 401 and other 4xx -> `ExternalAPIError`, not retryable;
5xx -> `ExternalAPIError`, retryable; timeouts and connection failures -> `NetworkError` (the outcome
of a request that was sent is unknown). Alpaca's message is kept; credentials never appear in it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from nt_mcp.errors import (
    BusinessLogicError,
    ExternalAPIError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    TradingError,
    ValidationError,
)
from nt_mcp.infra.resilience import Upstreams

if TYPE_CHECKING:  # alpaca-py and requests are imported on the first Alpaca call (~0.25 s at start otherwise)
    from alpaca.common.exceptions import APIError

T = TypeVar("T")


def disable_internal_retries(client: Any) -> Any:
    """Stop alpaca-py's own sleeping retries on 429/504 (its constructors cannot set zero)."""
    client._retry = 0
    client._retry_wait = 0
    return client


def api_error_message(error: APIError) -> str:
    try:
        body = json.loads(str(error))
        return str(body.get("message") or body)
    except (ValueError, AttributeError):
        return str(error)[:300] or "no message"


def api_error_status(error: APIError) -> int | None:
    try:
        status = error.status_code
    except Exception:  # alpaca-py reads the response lazily; a missing one means no status
        return None
    return int(status) if status is not None else None


def _retry_after(error: APIError) -> float:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None) or {}
    if headers.get("Retry-After"):
        try:
            return max(0.0, float(headers["Retry-After"]))
        except ValueError:
            pass
    if headers.get("X-RateLimit-Reset"):
        try:
            return max(0.0, float(headers["X-RateLimit-Reset"]) - time.time())
        except ValueError:
            pass
    return 1.0


def map_api_error(error: APIError, service: str, what: str) -> TradingError:
    status = api_error_status(error)
    message = f"Alpaca refused {what}: {api_error_message(error)}"
    if status in (400, 422):
        return ValidationError(message, context={"service": service, "status": status})
    if status == 403:
        return BusinessLogicError(message, code="BROKER_REJECTED", context={"service": service})
    if status == 404:
        return NotFoundError(f"Alpaca found no {what}.", context={"service": service})
    if status == 429:
        return RateLimitError(
            f"Alpaca's rate limit was reached ({what}).",
            retry_after_s=_retry_after(error),
            context={"service": service},
        )
    if status == 401:
        return ExternalAPIError(
            "Alpaca rejected the API keys (NT_ALPACA_API_KEY / NT_ALPACA_SECRET_KEY).",
            service=service,
            status=status,
        )
    return ExternalAPIError(message, service=service, status=status)


async def call_alpaca(
    service: str, call: Callable[[], T], *, what: str, upstreams: Upstreams | None = None, idempotent: bool = True
) -> T:
    """Run one synchronous alpaca-py ``call`` in a worker thread, mapping its failures; with
    ``upstreams``, behind ``service``'s circuit breaker and retried when ``idempotent`` (reads and
    cancels; order submission is not retried: its unknown outcome is resolved by a lookup)."""
    if upstreams is not None:
        return await upstreams.call(service, lambda: call_alpaca(service, call, what=what), idempotent=idempotent)
    import requests
    from alpaca.common.exceptions import APIError

    try:
        return await asyncio.to_thread(call)
    except APIError as error:
        raise map_api_error(error, service, what) from error
    except requests.exceptions.Timeout as error:
        raise NetworkError(
            f"Alpaca did not answer in time ({what}); the outcome is unknown.", context={"service": service}
        ) from error
    except requests.exceptions.ConnectionError as error:
        raise NetworkError(f"Could not reach Alpaca ({what}).", context={"service": service}) from error
