"""The typed errors' JSON form and retry rules, and secret redaction in log lines."""

from __future__ import annotations

import io
import json
import logging

import pytest

from nt_mcp.errors import ExternalAPIError, InternalError, RateLimitError, ValidationError
from nt_mcp.infra.observability import JsonFormatter, redact


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (503, True), (429, True), (400, False), (404, False), (422, False), (None, True)],
)
def test_external_api_errors_retry_only_5xx_and_429(status: int | None, retryable: bool) -> None:
    error = ExternalAPIError("upstream said no", service="alpaca", status=status)
    assert error.retryable is retryable
    assert error.to_dict()["context"]["service"] == "alpaca"


def test_error_json_form() -> None:
    body = RateLimitError("slow down", retry_after_s=12.34567).to_dict()
    assert body == {
        "code": "RATE_LIMITED",
        "message": "slow down",
        "retryable": True,
        "category": "rate_limit",
        "retry_after_s": 12.346,
    }
    assert ValidationError("slow must exceed fast", argument="slow").to_dict()["context"] == {"argument": "slow"}
    internal = InternalError("abc123")
    assert "abc123" in internal.message and internal.code == "INTERNAL"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("GET /v2/odds?apiKey=abcdef123456&regions=us", "abcdef123456"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ("token=sk-live-123456789", "sk-live-123456789"),
        ('{"secret_key": "s3cr3t-v4lue"}', "s3cr3t-v4lue"),
        ("postgresql://nt:pa55word@db:5432/nt", "pa55word"),
        ("APCA-API-SECRET-KEY: zzzsecretzzz", "zzzsecretzzz"),
    ],
)
def test_redaction_removes_secrets(line: str, secret: str) -> None:
    cleaned = redact(line)
    assert secret not in cleaned
    assert "[REDACTED]" in cleaned


def test_log_lines_are_json_and_redacted() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("nt_mcp.test.redaction")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("calling %s", "https://api.example/v4?apiKey=verysecret", extra={"tool": "get_odds"})
    finally:
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["level"] == "WARNING" and record["tool"] == "get_odds"
    assert "verysecret" not in stream.getvalue()


def test_uvicorn_colour_codes_stay_out_of_json_logs() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("uvicorn.error.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:  # what uvicorn logs at start: the plain message plus a coloured copy in `color_message`
        logger.info("Uvicorn running on %s", "http://127.0.0.1:8000", extra={"color_message": "\x1b[1m%s\x1b[0m"})
    finally:
        logger.removeHandler(handler)
    record = json.loads(stream.getvalue())
    assert record["msg"] == "Uvicorn running on http://127.0.0.1:8000"
    assert "color_message" not in record and "\\u001b" not in stream.getvalue()
