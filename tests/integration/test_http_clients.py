"""HTTP details clients depend on: tokenless loopback serving (NT_HTTP_AUTH=none) with DNS-rebinding
protection, the RFC 6750 challenge and its metric, RFC 9728 metadata, resumable SSE streams (priming
event, retry, Last-Event-ID). Real uvicorn on 127.0.0.1; successful calls through the real `mcp` client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from prometheus_client import REGISTRY

from nt_mcp.server.auth import protected_resource_metadata
from tests.cli import run_cli
from tests.conftest import make_settings
from tests.http_support import INIT_BODY, MCP_HEADERS, Running, http_settings, make_token, serve_in_thread, sse_events
from tests.servers import free_port


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    settings = make_settings(
        tmp_path_factory.mktemp("local"),
        port=free_port(),
        http_auth="none",
        stdio_scopes="read,backtest",
        http_rate_limit="10000/minute",
    )
    with serve_in_thread(settings) as server:
        yield server


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    with serve_in_thread(http_settings(tmp_path_factory.mktemp("secured"))) as server:
        yield server


# -- NT_HTTP_AUTH=none on loopback --------------------------------------------------------------------


async def test_tokenless_loopback_server_is_the_local_operator(local: Running) -> None:
    async with Client(streamable_http_client(local.mcp_url)) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        status = await client.call_tool("server_status", {})
    assert status.structured_content["principal"] == "local-operator"
    assert status.structured_content["scopes"] == ["backtest", "read"]  # NT_STDIO_SCOPES
    assert "run_backtest" in tools and "place_order" not in tools


@pytest.mark.parametrize(
    ("headers", "status"),
    [({"host": "evil.example.com"}, 421), ({"origin": "http://evil.example.com"}, 403)],
)
async def test_tokenless_server_keeps_dns_rebinding_protection(
    local: Running, headers: dict[str, str], status: int
) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.post(local.mcp_url, json=INIT_BODY, headers=MCP_HEADERS | headers)
    assert response.status_code == status


@pytest.mark.parametrize(
    ("flags", "settings", "named"),
    [
        (["--host", "0.0.0.0"], {}, "0.0.0.0"),  # noqa: S104 - the refusal is the point
        (["--host", "192.168.1.20"], {}, "192.168.1.20"),
        ([], {"NT_FORWARDED_ALLOW_IPS": "127.0.0.1"}, "NT_FORWARDED_ALLOW_IPS"),
    ],
)
def test_tokenless_serving_is_refused_off_loopback(
    tmp_path: Path, flags: list[str], settings: dict[str, str], named: str
) -> None:
    result = run_cli(tmp_path, "serve", "--transport", "http", *flags, NT_HTTP_AUTH="none", **settings)
    assert result.returncode == 2, result.stderr
    assert "NT_HTTP_AUTH=none" in result.stderr and named in result.stderr and "Traceback" not in result.stderr


# -- the bearer challenge ------------------------------------------------------------------------------


def _missing_count() -> float:
    return REGISTRY.get_sample_value("nt_mcp_auth_failures_total", {"reason": "missing"}) or 0.0


async def test_no_credentials_get_a_challenge_without_an_error_code(secured: Running) -> None:
    before = _missing_count()
    async with httpx.AsyncClient() as client:
        response = await client.post(secured.mcp_url, json=INIT_BODY, headers=MCP_HEADERS)
        basic_auth = MCP_HEADERS | {"authorization": "Basic eA=="}
        basic = await client.post(secured.mcp_url, json=INIT_BODY, headers=basic_auth)
    metadata = f"{secured.settings.base_url}/.well-known/oauth-protected-resource/mcp"
    for refused in (response, basic):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == f'Bearer resource_metadata="{metadata}"'  # RFC 6750 3.1
    assert _missing_count() == before + 2


async def test_a_bad_token_gets_invalid_token(secured: Running) -> None:
    token = make_token(secured.settings, aud="https://elsewhere.example/mcp")
    async with httpx.AsyncClient() as client:
        response = await client.post(
            secured.mcp_url, json=INIT_BODY, headers=MCP_HEADERS | {"authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token"') and "resource_metadata=" in challenge


def test_metadata_names_the_authorization_server_when_the_issuer_is_a_url(tmp_path: Path) -> None:
    url_issuer = make_settings(tmp_path, jwt_issuer="https://login.example.com/tenant")
    plain = make_settings(tmp_path)
    assert protected_resource_metadata(url_issuer)["authorization_servers"] == ["https://login.example.com/tenant"]
    assert "authorization_servers" not in protected_resource_metadata(plain)


# -- resumable streams -----------------------------------------------------------------------------------


async def _session(client: httpx.AsyncClient, url: str, version: str) -> dict[str, str]:
    body: dict[str, Any] = INIT_BODY | {"params": INIT_BODY["params"] | {"protocolVersion": version}}
    response = await client.post(url, json=body, headers=MCP_HEADERS)
    assert response.status_code == 200, response.text
    headers = MCP_HEADERS | {"mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": version}
    await client.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


async def test_sse_streams_open_with_a_priming_event_and_resume_after_a_drop(local: Running) -> None:
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "ping", "arguments": {"echo": "x"}}}
    async with httpx.AsyncClient(timeout=30) as client:
        headers = await _session(client, local.mcp_url, "2025-11-25")
        response = await client.post(local.mcp_url, json=call, headers=headers)
        priming, result = sse_events(response.text)
        assert priming["id"] and priming["data"] == "" and priming["retry"] == "1000"
        assert result["id"] and '"echo":"x"' in result["data"].replace(" ", "")
        # a client that lost the stream after the priming event reconnects with its id and gets the rest
        async with client.stream(
            "GET", local.mcp_url, headers=headers | {"last-event-id": priming["id"], "accept": "text/event-stream"}
        ) as replay:
            seen = ""
            async for chunk in replay.aiter_text():
                seen += chunk
                if '"id":7' in seen.replace(" ", ""):
                    break
        assert '"echo":"x"' in seen.replace(" ", "")


async def test_older_clients_get_no_priming_event(local: Running) -> None:
    """The SDK primes only streams of 2025-11-25 clients: older ones may not expect an empty event."""
    call = {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "ping", "arguments": {}}}
    async with httpx.AsyncClient(timeout=30) as client:
        headers = await _session(client, local.mcp_url, "2025-06-18")
        response = await client.post(local.mcp_url, json=call, headers=headers)
    events = sse_events(response.text)
    assert len(events) == 1 and '"pong":true' in events[0]["data"].replace(" ", "")
