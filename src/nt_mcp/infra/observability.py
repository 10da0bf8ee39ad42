"""Logging (JSON lines on stderr, secrets redacted) and the Prometheus metrics the server exports.

On stdio, stdout carries MCP messages only: every log line goes to stderr.
Redaction runs on the formatted line, so a secret cannot reach the log through an argument,
an exception message or a URL: bearer tokens, JWTs, ``apiKey=``-style query values and
``key/secret/token/password`` assignments become ``[REDACTED]``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 [REDACTED]"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), "[REDACTED]"),
    (
        re.compile(
            r"(?i)((?:api[_-]?key|apikey|secret(?:[_-]?key)?|token|password|passwd|access[_-]?key"
            r"|authorization|apca-api-key-id|apca-api-secret-key)[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;}]+)"
        ),
        r"\1[REDACTED]",
    ),
    (re.compile(r"(?i)(://[^:/@\s]+:)([^@\s]+)(@)"), r"\1[REDACTED]\3"),
)


# Every redaction above needs one of these (lower-cased) in the text: a line without any of them
# (most lines, a tool call's line among them) is returned as it is, without the four substitutions
# (~2 us instead of ~100 us a line).
_SECRET_MARKERS = ("bearer", "eyj", "key", "secret", "token", "passw", "authorization", "://")


def redact(text: str) -> str:
    """Replace anything that looks like a credential in ``text`` with ``[REDACTED]``."""
    lowered = text.lower()
    if not any(marker in lowered for marker in _SECRET_MARKERS):
        return text
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, any ``extra`` fields, and exc."""

    # uvicorn adds color_message (its message with ANSI colour codes) to its records: not for JSON logs
    _STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName", "color_message"}

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = "".join(traceback.format_exception(*record.exc_info))
        return redact(json.dumps(payload, default=str))


def configure_logging(level: str = "INFO") -> None:
    """Send every log record, ours and the libraries', to stderr as redacted JSON lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The JSON line carries none of these, so do not gather them for every record (the logging
    # HOWTO's "Optimization": no caller frame walk, no thread/process/multiprocessing lookups).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    for noisy in ("httpx", "httpcore", "asyncio", "aiosqlite", "alembic", "sqlalchemy.engine.Engine"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


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
