"""The negative security battery over real HTTP on 127.0.0.1: uvicorn serving the product's HTTP app,
HS256 tokens, each refusal its own test. Successful calls go through the real `mcp` client."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from mcp import Client
from pydantic import BaseModel

from tests.http_support import (
    INIT_BODY,
    MCP_HEADERS,
    SECRET,
    Running,
    http_settings,
    make_token,
    mcp_transport,
    serve_in_thread,
)
from tests.results import error_of


class Moved(BaseModel):
    quantity: int


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    settings = http_settings(tmp_path_factory.mktemp("http"), max_request_body_bytes=64 * 1024)
    with serve_in_thread(settings) as server:
        yield server


async def post_init(running: Running, token: str | None = None, **kwargs: Any) -> httpx.Response:
    headers = dict(MCP_HEADERS) | kwargs.pop("headers", {})
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient() as client:
        return await client.post(kwargs.pop("url", running.mcp_url), json=INIT_BODY, headers=headers, **kwargs)


def assert_unauthorized(response: httpx.Response, running: Running) -> None:
    assert response.status_code == 401, response.text
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith("Bearer ")
    expected = f'resource_metadata="{running.settings.base_url}/.well-known/oauth-protected-resource/mcp"'
    assert expected in challenge


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- what a valid token gets ------------------------------------------------------------------------


async def test_valid_token_calls_a_tool_through_the_mcp_client(running: Running) -> None:
    token = make_token(running.settings, sub="alice", scope="read backtest")
    async with Client(mcp_transport(running.mcp_url, token)) as client:
        status = await client.call_tool("server_status", {})
    assert not status.is_error
    assert status.structured_content["principal"] == "alice"
    assert status.structured_content["scopes"] == ["backtest", "read"]
    assert status.structured_content["storage"]["healthy"] is True


async def test_scp_list_claim_gives_scopes(running: Running) -> None:
    token = make_token(running.settings, scope=None, scp=["read", "trade", "bogus"])
    async with Client(mcp_transport(running.mcp_url, token)) as client:
        status = await client.call_tool("server_status", {})
    assert status.structured_content["scopes"] == ["read", "trade"]


async def test_read_only_token_calling_a_trade_tool_is_forbidden(running: Running) -> None:
    token = make_token(running.settings, scope="read")
    async with Client(mcp_transport(running.mcp_url, token)) as client:
        result = await client.call_tool("place_order", {"symbol": "AAPL", "side": "buy", "qty": 1})
        allowed = await client.call_tool("ping", {})
        orders = await client.call_tool("get_orders", {"status": "all"})
    assert result.is_error
    error = error_of(result)
    assert error["code"] == "FORBIDDEN" and error["context"] == {"required_scope": "trade"}
    assert not allowed.is_error
    assert orders.structured_content["orders"] == []  # nothing was placed


async def test_trade_token_may_place_an_order(running: Running) -> None:
    token = make_token(running.settings, scope="read trade", sub="trader")
    async with Client(mcp_transport(running.mcp_url, token)) as client:
        result = await client.call_tool("place_order", {"symbol": "AAPL", "side": "buy", "qty": 2})
    assert not result.is_error, result.content
    assert result.structured_content["order"]["status"] == "filled" and result.structured_content["mode"] == "paper"


async def test_token_without_read_scope_cannot_read_status(running: Running) -> None:
    token = make_token(running.settings, scope="trade")
    async with Client(mcp_transport(running.mcp_url, token)) as client:
        result = await client.call_tool("server_status", {})
    assert result.is_error and error_of(result)["code"] == "FORBIDDEN"


async def test_expired_within_leeway_is_accepted(running: Running) -> None:
    now = int(time.time())
    token = make_token(running.settings, iat=now - 600, exp=now - 10)  # leeway is 30 s
    response = await post_init(running, token)
    assert response.status_code == 200, response.text


# -- refusals ----------------------------------------------------------------------------------------


async def test_no_token(running: Running) -> None:
    assert_unauthorized(await post_init(running), running)


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer  x y", "Basic YWxpY2U6cHc=", "Bearer not-a-jwt", "Bearer a.b.c", "Token abc"]
)
async def test_malformed_authorization_header(running: Running, header: str) -> None:
    assert_unauthorized(await post_init(running, headers={"authorization": header}), running)


async def test_token_in_query_string_is_refused(running: Running) -> None:
    token = make_token(running.settings)
    response = await post_init(running, url=f"{running.mcp_url}?access_token={token}")
    assert_unauthorized(response, running)
    assert 'error="invalid_request"' in response.headers["www-authenticate"]
    # even alongside a good Authorization header: a token in a URL leaks into logs and histories
    response = await post_init(running, token, url=f"{running.mcp_url}?access_token={token}")
    assert response.status_code == 401


async def test_alg_none(running: Running) -> None:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    payload = b64(json.dumps(_claims(running)).encode())
    assert_unauthorized(await post_init(running, f"{header}.{payload}."), running)


async def test_tampered_payload(running: Running) -> None:
    header, _payload, signature = make_token(running.settings, scope="read").split(".")
    forged = b64(json.dumps(_claims(running) | {"scope": "read trade admin"}).encode())
    assert_unauthorized(await post_init(running, f"{header}.{forged}.{signature}"), running)


async def test_tampered_signature(running: Running) -> None:
    header, payload, signature = make_token(running.settings).split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert_unauthorized(await post_init(running, f"{header}.{payload}.{flipped}"), running)


async def test_signed_with_another_secret(running: Running) -> None:
    token = make_token(running.settings, key="another-secret-0123456789abcdef-0123")
    assert_unauthorized(await post_init(running, token), running)


async def test_expired_beyond_leeway(running: Running) -> None:
    now = int(time.time())
    token = make_token(running.settings, iat=now - 600, exp=now - 60)
    assert_unauthorized(await post_init(running, token), running)


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "aud", "iss"])
async def test_missing_required_claim(running: Running, claim: str) -> None:
    token = make_token(running.settings, **{claim: None})
    assert_unauthorized(await post_init(running, token), running)


async def test_future_nbf(running: Running) -> None:
    token = make_token(running.settings, nbf=int(time.time()) + 300)
    assert_unauthorized(await post_init(running, token), running)


async def test_future_iat(running: Running) -> None:
    token = make_token(running.settings, iat=int(time.time()) + 300)
    assert_unauthorized(await post_init(running, token), running)


@pytest.mark.parametrize(
    "audience",
    ["https://other.example/mcp", "http://127.0.0.1:1/mcp", ["https://other.example/mcp"]],
)
async def test_wrong_audience(running: Running, audience: Any) -> None:
    token = make_token(running.settings, aud=audience)
    assert_unauthorized(await post_init(running, token), running)


@pytest.mark.parametrize("issuer", ["nt-mcp.evil", "nt-mcp ", "NT-MCP", "https://nt-mcp", "nt-mc"])
async def test_look_alike_issuer(running: Running, issuer: str) -> None:
    token = make_token(running.settings, iss=issuer)
    assert_unauthorized(await post_init(running, token), running)


async def test_empty_subject(running: Running) -> None:
    assert_unauthorized(await post_init(running, make_token(running.settings, sub="")), running)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
async def test_numeric_date_given_as_a_string_is_refused(running: Running, claim: str) -> None:
    now = int(time.time())
    value = {"exp": now + 300, "iat": now, "nbf": now}[claim]
    token = make_token(running.settings, **{claim: str(value)})  # RFC 7519 NumericDate is a JSON number
    assert_unauthorized(await post_init(running, token), running)


@pytest.mark.parametrize("subject", ["al\x00ice", "a" * 201, "bob\n", "\ud886"])
async def test_subject_that_cannot_be_a_principal_is_refused(running: Running, subject: str) -> None:
    token = make_token(running.settings, sub=subject)
    assert_unauthorized(await post_init(running, token), running)


# -- HTTP layer ----------------------------------------------------------------------------------------


async def test_bad_host_is_misdirected(running: Running) -> None:
    response = await post_init(running, make_token(running.settings), headers={"host": "evil.example"})
    assert response.status_code == 421


@pytest.mark.parametrize(
    "host", ["127.0.0.1:{port}.evil.example", "127.0.0.1:{port}@evil.example", "127.0.0.1:", "127.0.0.1:x{port}"]
)
async def test_host_must_match_name_and_port_exactly(running: Running, host: str) -> None:
    headers = {"host": host.format(port=running.settings.port)}
    response = await post_init(running, make_token(running.settings), headers=headers)
    assert response.status_code == 421


async def test_origin_must_match_name_and_port_exactly(running: Running) -> None:
    origin = f"http://localhost:{running.settings.port}.evil.example"
    response = await post_init(running, make_token(running.settings), headers={"origin": origin})
    assert response.status_code == 403


async def test_a_connection_trickling_its_headers_is_closed(tmp_path: Path) -> None:
    settings = http_settings(tmp_path, http_header_timeout_s=1.0)
    with serve_in_thread(settings) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.settings.port)
        started = time.monotonic()
        writer.write(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        closed_after = None
        for _ in range(40):  # one more header byte every 0.25 s: the keep-alive timer alone never fires
            await asyncio.sleep(0.25)
            try:
                writer.write(b"X")
                await writer.drain()
                if await asyncio.wait_for(reader.read(1), timeout=0.01) == b"":
                    closed_after = time.monotonic() - started
                    break
            except (ConnectionError, TimeoutError):
                if isinstance(writer.transport, asyncio.Transport) and writer.transport.is_closing():
                    closed_after = time.monotonic() - started
                    break
                continue
        writer.close()
        # an idle connection that never sends a byte is closed too
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", server.settings.port)
        idle = await asyncio.wait_for(idle_reader.read(1), timeout=5)
        idle_writer.close()
        # and a normal request on a fresh connection is still served
        response = await post_init(server, make_token(server.settings))
    assert closed_after is not None and 0.9 <= closed_after < 3, closed_after
    assert idle == b""
    assert response.status_code == 200


async def test_input_schemas_refuse_unknown_properties(running: Running) -> None:
    token = make_token(running.settings, sub="alice", scope="read backtest trade")
    async with Client(mcp_transport(running.mcp_url, token)) as client:
        tools = (await client.list_tools()).tools
    assert tools and all(t.input_schema.get("additionalProperties") is False for t in tools)


async def test_bad_origin_is_forbidden(running: Running) -> None:
    response = await post_init(running, make_token(running.settings), headers={"origin": "https://evil.example"})
    assert response.status_code == 403


async def test_allowed_origin_passes(running: Running) -> None:
    response = await post_init(
        running, make_token(running.settings), headers={"origin": f"http://localhost:{running.settings.port}"}
    )
    assert response.status_code == 200


async def test_oversized_body(running: Running) -> None:
    token = make_token(running.settings)
    body = json.dumps(INIT_BODY | {"padding": "x" * 100_000}).encode()
    async with httpx.AsyncClient() as client:
        declared = await client.post(
            running.mcp_url, content=body, headers=MCP_HEADERS | {"authorization": f"Bearer {token}"}
        )

        async def chunks() -> Any:  # no Content-Length: the limit must hold while streaming too
            for start in range(0, len(body), 8192):
                yield body[start : start + 8192]

        streamed = await client.post(
            running.mcp_url, content=chunks(), headers=MCP_HEADERS | {"authorization": f"Bearer {token}"}
        )
    assert declared.status_code == 413
    assert streamed.status_code == 413


async def test_security_headers_on_every_response(running: Running) -> None:
    async with httpx.AsyncClient() as client:
        responses = [
            await client.get(f"{running.url}/health/live"),
            await client.get(f"{running.url}/nowhere"),
            await client.post(running.mcp_url, json=INIT_BODY, headers=MCP_HEADERS),
        ]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in response.headers  # plain HTTP: no HSTS


async def test_protected_resource_metadata(running: Running) -> None:
    async with httpx.AsyncClient() as client:
        for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
            response = await client.get(running.url + path)
            assert response.status_code == 200
            body = response.json()
            assert body["resource"] == running.mcp_url
            assert body["scopes_supported"] == ["read", "backtest", "trade", "admin"]
            assert body["bearer_methods_supported"] == ["header"]


def _claims(running: Running) -> dict[str, Any]:
    now = int(time.time())
    return {
        "iss": running.settings.jwt_issuer,
        "aud": running.settings.token_audience,
        "sub": "mallory",
        "scope": "read",
        "iat": now,
        "exp": now + 300,
    }


def test_the_secret_really_verifies_tokens() -> None:
    """Guards the battery itself: the tokens it forges differ from a good one only where intended."""
    good = jwt.encode({"a": 1}, SECRET, algorithm="HS256")
    assert jwt.decode(good, SECRET, algorithms=["HS256"]) == {"a": 1}


def test_settings_path_is_isolated(tmp_path: Path) -> None:
    assert http_settings(tmp_path).data_home == tmp_path / "data"
