"""The Odds API v4 over httpx (no maintained SDK exists), behind the ``the-odds-api`` circuit breaker,
retries for 429/5xx only, and the cache.

- The key travels as the ``apiKey`` query parameter, as the API requires. It is never part of a cache
  key, a cached value, a result, an error message, a metric label or a stored request: those carry the
  request as ``/v4/...?...&apiKey=[REDACTED]``. httpx's own request log line is redacted too.
- Every answer's quota headers (``x-requests-remaining``, ``-used``, ``-last``) are kept as the latest
  `Quota` and exported as the gauges ``nt_mcp_odds_quota_remaining`` / ``_used`` and the counter
  ``nt_mcp_odds_credits_spent`` (by endpoint).
- Retries (resilience.Upstreams): 429 and 5xx, and connection failures (the request never left, no
  credit spent). A request that was sent but got no answer (read timeout) is not retried: it may have
  been charged.
- Odds are always fetched as decimal odds with ISO dates (tools convert for display): one price
  format upstream means one cache entry per board and one way to compute.
- Cache TTLs: ``NT_ODDS_TTL_S`` (30 s) for odds, event odds, events and scores; ``NT_ODDS_SPORTS_TTL_S``
  (6 h) for the sports list. Concurrent identical calls share one upstream request (single flight).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
from prometheus_client import Counter, Gauge

from nt_mcp import __version__
from nt_mcp.adapters.odds.errors import SERVICE, classify
from nt_mcp.adapters.odds.model import Cost, Fetched, OddsRequest, PriceFormat, Quota, SourceName, odds_cost
from nt_mcp.adapters.odds.parse import gc_paused
from nt_mcp.errors import ExternalAPIError, NetworkError, TradingError
from nt_mcp.infra.cache import Cache
from nt_mcp.infra.observability import redact
from nt_mcp.infra.resilience import Upstreams

log = logging.getLogger(__name__)

QUOTA_REMAINING = Gauge("nt_mcp_odds_quota_remaining", "The Odds API usage credits left (x-requests-remaining).")
QUOTA_USED = Gauge("nt_mcp_odds_quota_used", "The Odds API usage credits used since the plan's reset.")
CREDITS_SPENT = Counter(
    "nt_mcp_odds_credits_spent", "Usage credits The Odds API charged (x-requests-last), by endpoint.", ["endpoint"]
)
REQUESTS = Counter(
    "nt_mcp_odds_requests", "Requests to The Odds API by endpoint and HTTP status.", ["endpoint", "status"]
)


class _RedactLogFilter(logging.Filter):
    """httpx logs each request's full URL (``apiKey=...`` included) at INFO: redact it in the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken record is not ours to fix
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_HTTPX_LOG_FILTER = _RedactLogFilter()


def _install_log_filter() -> None:
    logger = logging.getLogger("httpx")
    if _HTTPX_LOG_FILTER not in logger.filters:
        logger.addFilter(_HTTPX_LOG_FILTER)


def _iso(moment: datetime) -> str:
    """The API's time format: ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


class TheOddsApi:
    """A client of The Odds API v4; one per server, created on the first odds call."""

    name: SourceName = "theoddsapi"
    price_format: PriceFormat = "decimal"  # always fetched as decimal odds

    def __init__(
        self,
        api_key: str,
        base_url: str,
        upstreams: Upstreams,
        cache: Cache,
        *,
        odds_ttl_s: float = 30.0,
        sports_ttl_s: float = 21600.0,
        timeout_s: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._key = api_key
        self.base_url = base_url.rstrip("/")
        self.upstreams = upstreams
        self.cache = cache
        self.odds_ttl_s = odds_ttl_s
        self.sports_ttl_s = sports_ttl_s
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            timeout=timeout_s,
            headers={"Accept": "application/json", "User-Agent": f"nt-mcp/{__version__}"},
            transport=transport,
        )
        self._quota: Quota | None = None
        _install_log_filter()

    def __repr__(self) -> str:  # never show the key
        return f"TheOddsApi(base_url={self.base_url!r})"

    # ------------------------------------------------------------ plumbing

    def _describe(self, path: str, params: dict[str, str]) -> str:
        query = urlencode(sorted(params.items()))
        return f"{self.base_url}{path}?{query}{'&' if query else ''}apiKey=[REDACTED]"

    def _cache_key(self, path: str, params: dict[str, str]) -> str:
        digest = hashlib.sha256(self._key.encode()).hexdigest()[:12]  # one cache per account, key not stored
        return f"odds:theoddsapi:{digest}:{self.base_url}{path}?{urlencode(sorted(params.items()))}"

    def _observe(self, endpoint: str, headers: httpx.Headers) -> Quota | None:
        remaining, used, last = (_header_int(headers, f"x-requests-{n}") for n in ("remaining", "used", "last"))
        if remaining is None and used is None and last is None:
            return None
        quota = Quota(remaining, used, last, datetime.now(UTC))
        self._quota = quota
        if remaining is not None:
            QUOTA_REMAINING.set(remaining)
        if used is not None:
            QUOTA_USED.set(used)
        if last:
            CREDITS_SPENT.labels(endpoint).inc(last)
        return quota

    async def _request(self, endpoint: str, path: str, params: dict[str, str]) -> dict[str, Any]:
        """One GET; the body and the quota of its answer, or the typed error."""
        try:
            response = await self._http.get(path, params={**params, "apiKey": self._key})
        except (httpx.ConnectError, httpx.ConnectTimeout) as error:  # never sent: no credit spent, safe to retry
            raise NetworkError(
                f"Could not connect to The Odds API ({endpoint}: {type(error).__name__}).", context={"service": SERVICE}
            ) from None
        except httpx.HTTPError as error:  # sent, outcome unknown: a retry could be charged twice, so none
            raise NetworkError(
                f"The Odds API did not answer ({endpoint}: {type(error).__name__}); the request may have been "
                "charged. Try again if the credits allow.",
                retryable=False,
                context={"service": SERVICE},
            ) from None
        REQUESTS.labels(endpoint, str(response.status_code)).inc()
        quota = self._observe(endpoint, response.headers)
        if response.status_code >= 400:
            raise classify(response.status_code, response.content, response.headers.get("retry-after"), self._key)
        try:
            with gc_paused():
                body = response.json()
        except ValueError:
            raise ExternalAPIError(
                f"The Odds API answered {endpoint} with something that is not JSON.",
                service=SERVICE,
                status=response.status_code,
                retryable=False,
            ) from None
        return {
            "data": body,
            "fetched_at": datetime.now(UTC).isoformat(),
            "quota": quota.to_json() if quota else None,
        }

    async def _get(
        self, endpoint: str, path: str, params: dict[str, str], ttl_s: float, expected: tuple[int, str]
    ) -> Fetched:
        fresh = False

        async def load() -> dict[str, Any]:
            nonlocal fresh
            answer = await self.upstreams.call(SERVICE, lambda: self._request(endpoint, path, params), idempotent=True)
            fresh = True
            return answer

        answer = await self.cache.get_or_load(self._cache_key(path, params), load, ttl_s)
        quota = Quota.from_json(answer["quota"]) if answer.get("quota") else None
        charged = (quota.last if quota else None) if fresh else 0
        data = answer["data"]
        snapshot_at = None
        if endpoint.startswith("historical") and isinstance(data, dict):
            stamp = data.get("timestamp")
            snapshot_at = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if isinstance(stamp, str) else None
            data = data.get("data")
        return Fetched(
            data=data,
            source="theoddsapi",
            endpoint=endpoint,
            request=self._describe(path, params),
            fetched_at=datetime.fromisoformat(answer["fetched_at"]),
            cost=Cost(expected[0], charged, expected[1]),
            quota=self._quota or quota,
            cached=not fresh,
            snapshot_at=snapshot_at,
        )

    # ------------------------------------------------------------ endpoints

    async def sports(self, all_sports: bool) -> Fetched:
        """``GET /v4/sports`` (free): in-season sports, or all with ``all=true``."""
        params = {"all": "true"} if all_sports else {}
        return await self._get("sports", "/v4/sports", params, self.sports_ttl_s, (0, "free"))

    async def sport_keys(self) -> set[str] | None:
        """Every sport key the API knows (``all=true``, cached for hours); None when that list is unavailable."""
        try:
            fetched = await self.sports(True)
        except TradingError as error:
            log.info("sports list unavailable; sport keys are not checked", extra={"code": error.code})
            return None
        if not isinstance(fetched.data, list):
            return None
        return {str(s["key"]) for s in fetched.data if isinstance(s, dict) and isinstance(s.get("key"), str)}

    async def events(self, sport: str, commence_from: datetime | None, commence_to: datetime | None) -> Fetched:
        """``GET /v4/sports/{sport}/events`` (free): upcoming and live events without odds."""
        params = {"dateFormat": "iso"}
        if commence_from is not None:
            params["commenceTimeFrom"] = _iso(commence_from)
        if commence_to is not None:
            params["commenceTimeTo"] = _iso(commence_to)
        return await self._get("events", f"/v4/sports/{sport}/events", params, self.odds_ttl_s, (0, "free"))

    def _odds_params(self, request: OddsRequest) -> dict[str, str]:
        params = {"markets": ",".join(request.markets), "oddsFormat": "decimal", "dateFormat": "iso"}
        if request.bookmakers:
            params["bookmakers"] = ",".join(request.bookmakers)  # takes precedence over regions upstream
        else:
            params["regions"] = ",".join(request.regions)
        if request.at is not None:
            params["date"] = _iso(request.at)
        return params

    async def odds(self, request: OddsRequest) -> Fetched:
        """``GET /v4/sports/{sport}/odds`` (or ``/v4/historical/...`` with ``at``): every event's prices."""
        params = self._odds_params(request)
        if request.event_ids:
            params["eventIds"] = ",".join(request.event_ids)
        if request.commence_from is not None:
            params["commenceTimeFrom"] = _iso(request.commence_from)
        if request.commence_to is not None:
            params["commenceTimeTo"] = _iso(request.commence_to)
        historical = request.at is not None
        path = f"/v4/{'historical/' if historical else ''}sports/{request.sport}/odds"
        expected = odds_cost(len(request.markets), request.regions, request.bookmakers, historical)
        endpoint = "historical_odds" if historical else "odds"
        return await self._get(endpoint, path, params, self.odds_ttl_s, expected)

    async def event_odds(self, event_id: str, request: OddsRequest) -> Fetched:
        """``GET /v4/sports/{sport}/events/{id}/odds``: one event, any market (player props included)."""
        params = self._odds_params(request)
        historical = request.at is not None
        path = f"/v4/{'historical/' if historical else ''}sports/{request.sport}/events/{event_id}/odds"
        cost, formula = odds_cost(len(request.markets), request.regions, request.bookmakers, historical)
        expected = (cost, formula.replace("market(s)", "market(s) returned (at most those asked)"))
        endpoint = "historical_event_odds" if historical else "event_odds"
        return await self._get(endpoint, path, params, self.odds_ttl_s, expected)

    async def scores(self, sport: str, days_from: int | None) -> Fetched:
        """``GET /v4/sports/{sport}/scores``: live and upcoming games, plus completed ones of the last
        ``days_from`` days (1-3). Costs 1, or 2 with ``days_from``."""
        params = {"dateFormat": "iso"}
        if days_from is not None:
            params["daysFrom"] = str(days_from)
        expected = (2, "2 with days_from") if days_from is not None else (1, "1 without days_from")
        return await self._get("scores", f"/v4/sports/{sport}/scores", params, self.odds_ttl_s, expected)

    def last_quota(self) -> Quota | None:
        """The quota of the latest answer this process saw (None before the first)."""
        return self._quota

    async def refresh_quota(self) -> Quota | None:
        """Read the quota now with a free ``/v4/sports`` request (never from the cache)."""
        answer = await self.upstreams.call(SERVICE, lambda: self._request("sports", "/v4/sports", {}), idempotent=True)
        return Quota.from_json(answer["quota"]) if answer.get("quota") else self._quota

    async def close(self) -> None:
        await self._http.aclose()
