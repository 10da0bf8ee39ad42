"""Helpers for the HTTP tests: settings with a JWT secret, token minting with any claims, and the real
HTTP app served by uvicorn on a free 127.0.0.1 port in a background thread."""

from __future__ import annotations

import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import jwt
import uvicorn
from mcp.client.streamable_http import streamable_http_client

from nt_mcp.config import Settings
from nt_mcp.server.auth import build_verifier
from nt_mcp.server.http import HttpApp, ServerFactory
from nt_mcp.server.httpserve import uvicorn_config
from tests.conftest import make_settings
from tests.servers import free_port

SECRET = "test-secret-0123456789abcdef-0123456789"
INIT_BODY = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def http_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "port": free_port(),
        "jwt_secret": SECRET,
        "http_rate_limit": "10000/minute",
        "auth_failure_limit": "10000/minute",
    } | overrides
    return make_settings(tmp_path, **values)


def claims_for(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Good claims for ``settings``; an override of None removes the claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.token_audience,
        "sub": "alice",
        "scope": "read",
        "iat": now,
        "exp": now + 300,
    } | overrides
    return {k: v for k, v in claims.items() if v is not None}


def make_token(
    settings: Settings,
    *,
    key: Any = SECRET,
    algorithm: str = "HS256",
    headers: dict[str, Any] | None = None,
    **claims: Any,
) -> str:
    return jwt.encode(claims_for(settings, **claims), key, algorithm=algorithm, headers=headers)


@dataclass
class Running:
    settings: Settings
    app: HttpApp
    url: str
    server: uvicorn.Server

    @property
    def mcp_url(self) -> str:
        return f"{self.url}/mcp"


@contextlib.contextmanager
def serve_in_thread(
    settings: Settings,
    *,
    server_factory: ServerFactory | None = None,
    transport: str = "http",
    verifier: Any = None,
) -> Iterator[Running]:
    """The product's HTTP app (TLS when the settings say so) under uvicorn, until the block ends.
    With ``NT_HTTP_AUTH=none`` in the settings there is no verifier (calls are the local operator)."""
    verifier = None if settings.http_auth == "none" else verifier or build_verifier(settings)
    app = HttpApp(settings, verifier, server_factory=server_factory, transport=transport)
    config = uvicorn_config(settings, app.asgi, port=settings.port, tls=settings.tls_enabled)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the HTTP server did not start")
        time.sleep(0.02)
    scheme = "https" if settings.tls_enabled else "http"
    try:
        yield Running(settings, app, f"{scheme}://127.0.0.1:{settings.port}", server)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def mcp_transport(url: str, token: str, *, verify: ssl.SSLContext | bool = True) -> Any:
    """A streamable-HTTP transport for `mcp.Client` that sends ``token`` in the Authorization header."""
    client = httpx2.AsyncClient(
        headers={"authorization": f"Bearer {token}"},
        verify=verify,
        timeout=httpx2.Timeout(30, read=120),
    )
    return streamable_http_client(url, http_client=client)


def sse_events(text: str) -> list[dict[str, str]]:
    """The events of a text/event-stream body, each as {field: value} (data lines joined)."""
    events = []
    for block in text.replace("\r\n", "\n").strip().split("\n\n"):
        event: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            event[name] = event.get(name, "") + value.removeprefix(" ")
        events.append(event)
    return events
