"""SIGTERM/SIGINT start the drain in the signal handler itself (new MCP requests get 503 at once, which a
load balancer retries elsewhere), whichever of the HTTP server and the HTTP->HTTPS redirect listener
installed the handler last."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from sse_starlette.sse import AppStatus

from nt_mcp.server.certs import write_dev_pair
from nt_mcp.server.httpserve import build
from tests.http_support import http_settings
from tests.servers import free_port


def test_the_signal_handler_starts_the_drain_on_either_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # as `httpserve.serve` sets it (sse-starlette wraps uvicorn's handler): the SDK's SSE streams end when
    # the drain is done, not at the signal; restored after the test, as other tests' streams need it
    monkeypatch.setattr(AppStatus, "enable_automatic_graceful_drain", False)
    monkeypatch.setattr(AppStatus, "should_exit", False)
    cert, key = write_dev_pair(tmp_path / "certs")
    settings = http_settings(tmp_path, tls_cert_file=cert, tls_key_file=key, http_redirect_port=free_port())
    for receiver in ("main", "redirect"):
        main, redirect = build(settings, "http")
        assert redirect is not None and not main.http_app.draining
        handler = main.handle_exit if receiver == "main" else redirect.handle_exit
        handler(signal.SIGTERM, None)
        assert main.http_app.draining, receiver
        assert main.should_exit, receiver  # uvicorn's own flag: the shutdown follows at its next tick
        assert not AppStatus.should_exit  # running calls' streams stay open until the drain ends them
