"""Logging: JSON lines on stderr, secrets redacted (`nt_mcp.infra.observability` re-exports these).

On stdio, stdout carries MCP messages only: every log line goes to stderr.
Redaction runs on the formatted line, so a secret cannot reach the log through an argument,
an exception message or a URL: bearer tokens, JWTs, ``apiKey=``-style query values and
``key/secret/token/password`` assignments become ``[REDACTED]``. A module of its own, without the
metrics, so the command line configures logging without importing prometheus_client.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

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
