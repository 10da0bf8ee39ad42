"""`VenueHTTP`: one venue's HTTP door. Rate-limited, behind the breaker and retries, errors typed.

- A client-side limiter (aiolimiter's leaky bucket, ``requests_per_s``) paces every request, so we
  stay under the venue's documented rates instead of discovering them (Polymarket's Cloudflare
  throttles rather than rejects; Kalshi answers 429 without ``Retry-After``).
- Reads go through `Upstreams.call(service, ..., idempotent=True)`: retried on 5xx, 429 and network
  errors, counted by the venue's circuit breaker. When a read still fails because the venue is down
  (5xx, unreachable, breaker open) the caller gets ``SERVICE_UNAVAILABLE`` with the service name and
  ``retry_after_s``.
- Writes (orders) are sent once (``idempotent=False``); their failures stay as they are, so the
  caller can resolve an unknown outcome by looking the order up.
- Status mapping: 400/422 -> VALIDATION_ERROR, 401/403 -> EXTERNAL_API_ERROR (not retryable),
  404 -> NOT_FOUND, 409 -> ORDER_REJECTED, 429 -> RATE_LIMITED (``Retry-After`` when sent, else
  1 s), 5xx -> EXTERNAL_API_ERROR (retryable), timeouts and connection errors -> NETWORK_ERROR.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from aiolimiter import AsyncLimiter

from nt_mcp.errors import (
    BusinessLogicError,
    ExternalAPIError,
    NetworkError,
    NotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    TradingError,
    ValidationError,
)
from nt_mcp.infra.resilience import Upstreams

DEFAULT_429_WAIT_S = 1.0
USER_AGENT = "nt-mcp (prediction markets)"


def _venue_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (ValueError, json.JSONDecodeError):
        return response.text[:200] or "no message"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error.get("code") or error)[:300]
        return str(error or body.get("message") or body)[:300]
    return str(body)[:300]


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
    return DEFAULT_429_WAIT_S


def map_response(service: str, response: httpx.Response, what: str) -> Any:
    """The parsed JSON body of a 2xx response; a typed error for anything else."""
    status = response.status_code
    if 200 <= status < 300:
        if not response.content:
            return {}
        try:
            return response.json()
        except (ValueError, json.JSONDecodeError):
            raise ExternalAPIError(
                f"{service} answered {what} with a body that is not JSON.", service=service, status=502
            ) from None
    message = f"{service} refused {what}: {_venue_message(response)}"
    context = {"service": service, "status": status}
    if status in (400, 422):
        raise ValidationError(message, context=context)
    if status == 404:
        raise NotFoundError(f"{service} has no {what}.", context=context)
    if status == 409:
        raise BusinessLogicError(message, code="ORDER_REJECTED", context=context)
    if status == 429:
        raise RateLimitError(f"{service}'s rate limit was reached ({what}).", retry_after_s=_retry_after(response))
    if status in (401, 403):
        raise ExternalAPIError(f"{service} refused the request ({status}) for {what}.", service=service, status=status)
    raise ExternalAPIError(message, service=service, status=status)


class VenueHTTP:
    """HTTP to one venue host: ``base_url`` + path, paced, behind ``service``'s breaker."""

    def __init__(
        self,
        service: str,
        base_url: str,
        upstreams: Upstreams,
        *,
        requests_per_s: float,
        timeout_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.upstreams = upstreams
        self.timeout_s = timeout_s
        self._limiter = AsyncLimiter(max(1.0, requests_per_s), 1.0)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout_s, headers={"User-Agent": USER_AGENT}, transport=self._transport
            )
        return self._client

    async def _once(
        self,
        method: str,
        path: str,
        what: str,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        headers: Callable[[], dict[str, str]] | None = None,
    ) -> Any:
        async with self._limiter:
            try:
                response = await self._http().request(
                    method,
                    self.base_url + path,
                    params={k: v for k, v in (params or {}).items() if v is not None},
                    content=json.dumps(body) if body is not None else None,
                    headers={
                        **({"Content-Type": "application/json"} if body is not None else {}),
                        **(headers() if headers else {}),
                    },
                )
            except httpx.TimeoutException as error:
                raise NetworkError(
                    f"{self.service} did not answer in time ({what}).", context={"service": self.service}
                ) from error
            except httpx.HTTPError as error:
                raise NetworkError(
                    f"Could not reach {self.service} ({what}).", context={"service": self.service}
                ) from error
        return map_response(self.service, response, what)

    async def get_json(
        self,
        path: str,
        what: str,
        params: Mapping[str, Any] | None = None,
        headers: Callable[[], dict[str, str]] | None = None,
    ) -> Any:
        """GET ``path`` (retried, breaker-guarded). A venue that stays down is ``SERVICE_UNAVAILABLE``."""
        try:
            return await self.upstreams.call(
                self.service, lambda: self._once("GET", path, what, params, headers=headers), idempotent=True
            )
        except ServiceUnavailableError:
            raise
        except (NetworkError, ExternalAPIError) as error:
            if isinstance(error, ExternalAPIError) and error.status is not None and error.status < 500:
                raise
            raise await self.unavailable(error) from error

    async def send(
        self,
        method: str,
        path: str,
        what: str,
        body: Any = None,
        headers: Callable[[], dict[str, str]] | None = None,
        *,
        idempotent: bool = False,
    ) -> Any:
        """A write (an order, a cancel): sent once unless ``idempotent``; failures stay as they are."""
        return await self.upstreams.call(
            self.service, lambda: self._once(method, path, what, body=body, headers=headers), idempotent=idempotent
        )

    async def unavailable(self, error: TradingError) -> ServiceUnavailableError:
        breaker = await self.upstreams.breaker(self.service)
        settings = self.upstreams.settings
        wait = (
            breaker.retry_after_s()
            if breaker.state == "open"
            else min(settings.breaker_reset_timeout_s, max(settings.retry_max_backoff_s, 1.0))
        )
        return ServiceUnavailableError(
            f"{self.service} is not answering ({error.message}); try again later.",
            service=self.service,
            retry_after_s=wait,
        )

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await asyncio.shield(client.aclose())
