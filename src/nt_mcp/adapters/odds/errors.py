"""The Odds API's errors as the typed errors, classified by ``error_code`` (not by HTTP status).

The API answers errors as ``{"message": ..., "error_code": ..., "details_url": ...}``. Mapping:

- ``MISSING_KEY``, ``INVALID_KEY``, ``DEACTIVATED_KEY`` (401) -> ``ODDS_API_KEY_REJECTED``, not retryable
- ``OUT_OF_USAGE_CREDITS`` (401) -> ``ODDS_QUOTA_EXHAUSTED``, not retryable (the plan's credits are spent)
- ``HISTORICAL_UNAVAILABLE_ON_FREE_USAGE_PLAN`` (401) -> ``ODDS_PLAN_REQUIRED``, not retryable
- ``EXCEEDED_FREQ_LIMIT`` (429) -> ``ODDS_RATE_LIMITED`` (a `RateLimitError`), retried after ``Retry-After``
- ``EVENT_NOT_FOUND`` (404) -> ``EVENT_NOT_FOUND`` (a `NotFoundError`), argument ``event_id``
- ``UNKNOWN_SPORT``, ``INVALID_MARKET``, ``INVALID_MARKET_COMBO``, other ``INVALID_*``/``MISSING_*`` and any
  other 400/422 -> ``VALIDATION_ERROR`` naming the argument when the code says which
- 5xx -> ``EXTERNAL_API_ERROR``, retryable; any other status -> ``ODDS_API_ERROR``, not retryable

Only 429 and 5xx are retried (resilience.Upstreams retries retryable errors only); none of the 4xx
trips the circuit breaker. Messages are the API's own, with anything that looks like a key removed.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from nt_mcp.errors import ExternalAPIError, NotFoundError, RateLimitError, TradingError, ValidationError
from nt_mcp.infra.observability import redact

SERVICE = "the-odds-api"
KEY_CODES = {"MISSING_KEY", "INVALID_KEY", "DEACTIVATED_KEY"}
ARGUMENT_BY_CODE = {
    "UNKNOWN_SPORT": "sport",
    "INVALID_SPORT": "sport",
    "INVALID_MARKET": "markets",
    "INVALID_MARKET_COMBO": "markets",
    "MISSING_MARKET": "markets",
    "INVALID_REGION": "regions",
    "MISSING_REGION": "regions",
    "INVALID_BOOKMAKERS": "bookmakers",
    "INVALID_ODDS_FORMAT": "odds_format",
    "INVALID_COMMENCE_TIME_FROM": "commence_from",
    "INVALID_COMMENCE_TIME_TO": "commence_to",
    "INVALID_EVENT_ID": "event_id",
    "INVALID_EVENT_IDS": "event_ids",
    "INVALID_HISTORICAL_TIMESTAMP": "at",
    "INVALID_SCORES_DAYS_FROM": "days_from",
}


def scrub(text: str, secret: str | None) -> str:
    """``text`` without ``secret`` and without anything that looks like a credential, at most 300 chars."""
    if secret:
        text = text.replace(secret, "[REDACTED]")
    return redact(text)[:300]


def _body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def classify(status: int, raw: bytes, retry_after: str | None, secret: str | None) -> TradingError:
    """The typed error for an error answer (``status`` >= 400) of The Odds API."""
    body = _body(raw)
    code = str(body.get("error_code") or "").upper()[:64]
    message = scrub(str(body.get("message") or f"HTTP {status}"), secret)
    context: dict[str, Any] = {"service": SERVICE, "status": status}
    if code:
        context["upstream_error_code"] = code
    said = f"The Odds API answered {status} {code or ''}: {message}".replace("  ", " ")
    if code in KEY_CODES:
        return ExternalAPIError(
            f"The Odds API refused the key in NT_ODDS_API_KEY ({code}): {message}",
            service=SERVICE,
            status=status,
            code="ODDS_API_KEY_REJECTED",
            retryable=False,
            context={"upstream_error_code": code},
        )
    if code == "OUT_OF_USAGE_CREDITS":
        return ExternalAPIError(
            f"The Odds API usage credits are spent ({code}): {message} Wait for the plan's reset or upgrade it; "
            "the files source (NT_ODDS_DIR) needs no credits.",
            service=SERVICE,
            status=status,
            code="ODDS_QUOTA_EXHAUSTED",
            retryable=False,
            context={"upstream_error_code": code},
        )
    if code == "HISTORICAL_UNAVAILABLE_ON_FREE_USAGE_PLAN":
        return ExternalAPIError(
            f"Historical odds need a paid plan of The Odds API ({code}): {message}",
            service=SERVICE,
            status=status,
            code="ODDS_PLAN_REQUIRED",
            retryable=False,
            context={"upstream_error_code": code},
        )
    if code == "EXCEEDED_FREQ_LIMIT" or status == 429:
        wait = 1.0
        if retry_after:
            with contextlib.suppress(ValueError):
                wait = max(0.0, min(60.0, float(retry_after)))
        return RateLimitError(said, retry_after_s=wait, code="ODDS_RATE_LIMITED", context=context)
    if code == "EVENT_NOT_FOUND" or (status == 404 and not code):
        return NotFoundError(said, code="EVENT_NOT_FOUND", context=context | {"argument": "event_id"})
    if code in ARGUMENT_BY_CODE or (code.startswith(("INVALID_", "MISSING_")) and status < 500) or status in (400, 422):
        return ValidationError(said, argument=ARGUMENT_BY_CODE.get(code), context=context)
    if status >= 500:
        return ExternalAPIError(said, service=SERVICE, status=status)
    return ExternalAPIError(said, service=SERVICE, status=status, code="ODDS_API_ERROR", retryable=False)
