"""Logging (JSON lines on stderr, secrets redacted: `nt_mcp.infra.logs`) and the Prometheus metrics the
server exports.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from nt_mcp.infra.logs import JsonFormatter as JsonFormatter  # re-exported: the logging half lives there
from nt_mcp.infra.logs import configure_logging as configure_logging
from nt_mcp.infra.logs import redact as redact

# Metrics. Defined once per process; tool names and error codes are labels.
TOOL_CALLS = Counter("nt_mcp_tool_calls", "Tool calls by tool and outcome (ok or error code).", ["tool", "outcome"])
TOOL_LATENCY = Histogram(
    "nt_mcp_tool_call_duration_seconds",
    "Tool call latency by tool and outcome.",
    ["tool", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
RATE_LIMIT_REJECTIONS = Counter("nt_mcp_rate_limit_rejections", "Tool calls refused by the rate limiter.", ["tool"])
CACHE_EVENTS = Counter("nt_mcp_cache_events", "Cache lookups by backend and result.", ["backend", "result"])
SLOW_QUERIES = Counter("nt_mcp_db_slow_queries", "Statements slower than NT_DB_SLOW_QUERY_MS.")
RETRIES = Counter("nt_mcp_upstream_retries", "Retried upstream calls by service.", ["service"])
BREAKER_TRANSITIONS = Counter(
    "nt_mcp_breaker_transitions", "Circuit breaker state changes.", ["service", "from_state", "to_state"]
)
BREAKER_STATE = Gauge("nt_mcp_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open.", ["service"])

_CALL_METRICS: dict[tuple[str, str], tuple[Any, Any]] = {}


def call_metrics(tool: str, outcome: str) -> tuple[Any, Any]:
    """``TOOL_CALLS`` and ``TOOL_LATENCY`` for one (tool, outcome), looked up once per pair (the
    client's ``labels`` call validates and hashes its labels on every use)."""
    pair = _CALL_METRICS.get((tool, outcome))
    if pair is None:
        pair = _CALL_METRICS[(tool, outcome)] = (TOOL_CALLS.labels(tool, outcome), TOOL_LATENCY.labels(tool, outcome))
    return pair


SPOOL_DEPTH = Gauge("nt_mcp_spool_depth", "Writes waiting in the local spool for the database to come back.")
SPOOL_REPLAYS = Counter("nt_mcp_spool_replays", "Spooled writes replayed, by kind and result.", ["kind", "result"])
REDIS_DEGRADED = Gauge("nt_mcp_redis_degraded", "1 while Redis is unreachable and process memory stands in.")
DB_POOL = Gauge("nt_mcp_db_pool_connections", "Database pool connections by state.", ["state"])

# HTTP transports (nt_mcp.server.http): requests by route template (never the raw path), auth failures.
HTTP_REQUESTS = Counter(
    "nt_mcp_http_requests", "HTTP requests by method, route and status.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "nt_mcp_http_request_duration_seconds",
    "HTTP request duration until the response started, by route.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
HTTP_IN_FLIGHT = Gauge("nt_mcp_http_requests_in_flight", "HTTP requests being served.")
AUTH_FAILURES = Counter("nt_mcp_auth_failures", "Bearer tokens refused, by reason.", ["reason"])
HTTP_REJECTIONS = Counter("nt_mcp_http_rejections", "Requests refused before MCP handling, by reason.", ["reason"])
