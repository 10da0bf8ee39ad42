"""HTTP transports end to end: TLS with the dev cert through the real `mcp` client, legacy SSE,
public-key and JWKS verification, health and metrics, HTTP rate limits, a guard budget shared by two
replicas on one Redis, and the CLI's refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.sse import sse_client

from nt_mcp.server.certs import write_dev_pair
from tests.cli import run_cli
from tests.http_support import (
    INIT_BODY,
    MCP_HEADERS,
    claims_for,
    http_settings,
    make_token,
    mcp_transport,
    serve_in_thread,
)
from tests.results import error_of
from tests.servers import free_port


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def post_init(url: str, token: str | None, **kwargs: Any) -> httpx.Response:
    headers = dict(MCP_HEADERS) | ({"authorization": f"Bearer {token}"} if token else {})
    async with httpx.AsyncClient(**kwargs) as client:
        return await client.post(url, json=INIT_BODY, headers=headers)


# -- TLS -------------------------------------------------------------------------------------------------


async def test_tool_call_over_https_with_the_dev_cert(tmp_path: Path) -> None:
    cert, key = write_dev_pair(tmp_path / "certs")
    settings = http_settings(tmp_path, tls_cert_file=cert, tls_key_file=key)
    trust = ssl.create_default_context(cafile=str(cert))
    with serve_in_thread(settings) as running:
        assert running.mcp_url.startswith("https://127.0.0.1:")
        token = make_token(settings, sub="tls-user")
        async with Client(mcp_transport(running.mcp_url, token, verify=trust)) as client:
            pong = await client.call_tool("ping", {"echo": "over tls"})
        assert not pong.is_error and pong.structured_content["echo"] == "over tls"

        async with httpx.AsyncClient(verify=trust) as http:
            live = await http.get(f"{running.url}/health/live")
        assert live.headers["strict-transport-security"].startswith("max-age=")

        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(str(cert))
        old.maximum_version = ssl.TLSVersion.TLSv1_1  # deprecated on purpose: it must be refused
        with pytest.raises(httpx.ConnectError):
            async with httpx.AsyncClient(verify=old) as http:
                await http.get(f"{running.url}/health/live")

        with pytest.raises(httpx.ConnectError):  # an untrusted client does not get through either
            async with httpx.AsyncClient(verify=ssl.create_default_context()) as http:
                await http.get(f"{running.url}/health/live")


@pytest.mark.parametrize(("json_response", "stateless"), [(True, False), (False, True), (True, True)])
async def test_json_responses_and_stateless_mode_serve_the_real_client(
    tmp_path: Path, json_response: bool, stateless: bool
) -> None:
    settings = http_settings(tmp_path, http_json_response=json_response, http_stateless=stateless)
    with serve_in_thread(settings) as running:
        token = make_token(settings, sub="modes")
        async with Client(mcp_transport(running.mcp_url, token)) as client:
            pong = await client.call_tool("ping", {"echo": "modes"})
            bad = await client.call_tool("ping", {"echo": 1})
        headers = dict(MCP_HEADERS) | {"authorization": f"Bearer {token}"}
        async with httpx.AsyncClient() as http:
            init = await http.post(running.mcp_url, json=INIT_BODY, headers=headers)
    assert pong.structured_content["echo"] == "modes" and error_of(bad)["code"] == "VALIDATION_ERROR"
    content_type = init.headers["content-type"]
    assert content_type.startswith("application/json" if json_response else "text/event-stream")
    assert ("mcp-session-id" in init.headers) is not stateless  # stateless: no session to pin a client to


# -- legacy SSE transport ---------------------------------------------------------------------------------


async def test_sse_transport_needs_a_token_and_serves_tools(tmp_path: Path) -> None:
    settings = http_settings(tmp_path)
    with serve_in_thread(settings, transport="sse") as running:
        async with httpx.AsyncClient() as http:
            refused = await http.get(f"{running.url}/sse")
            no_mcp = await http.post(f"{running.url}/mcp", json=INIT_BODY, headers=MCP_HEADERS)
        assert refused.status_code == 401
        assert no_mcp.status_code == 404
        token = make_token(settings, sub="sse-user")
        transport = sse_client(f"{running.url}/sse", headers={"authorization": f"Bearer {token}"})
        async with Client(transport) as client:
            status = await client.call_tool("server_status", {})
        assert status.structured_content["principal"] == "sse-user"


# -- public keys and JWKS --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


async def test_rs256_public_key_file(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    pem_file = tmp_path / "public.pem"
    pem_file.write_bytes(_public_pem(rsa_key))
    settings = http_settings(tmp_path, jwt_secret=None, jwt_public_key_file=pem_file)
    with serve_in_thread(settings) as running:
        good = make_token(settings, key=rsa_key, algorithm="RS256")
        assert (await post_init(running.mcp_url, good)).status_code == 200

        # the classic confusion attack: HS256 "signed" with the RSA public key as the HMAC secret
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64(json.dumps(claims_for(settings)).encode())
        mac = hmac.new(_public_pem(rsa_key), f"{header}.{payload}".encode(), hashlib.sha256).digest()
        confused = f"{header}.{payload}.{b64(mac)}"
        assert (await post_init(running.mcp_url, confused)).status_code == 401

        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        assert (await post_init(running.mcp_url, make_token(settings, key=other, algorithm="RS256"))).status_code == 401


class _JwksHandler(http.server.BaseHTTPRequestHandler):
    body = b"{}"
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *_args: Any) -> None:
        return


@pytest.fixture
def jwks_url(rsa_key: rsa.RSAPrivateKey) -> Iterator[str]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    _JwksHandler.body = json.dumps({"keys": [jwk | {"kid": "key-1", "use": "sig", "alg": "RS256"}]}).encode()
    _JwksHandler.hits = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _JwksHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/.well-known/jwks.json"
    finally:
        server.shutdown()


async def test_jwks_kid_lookup(tmp_path: Path, rsa_key: rsa.RSAPrivateKey, jwks_url: str) -> None:
    settings = http_settings(tmp_path, jwt_secret=None, jwt_jwks_url=jwks_url)
    with serve_in_thread(settings) as running:
        good = make_token(settings, key=rsa_key, algorithm="RS256", headers={"kid": "key-1"})
        unknown = make_token(settings, key=rsa_key, algorithm="RS256", headers={"kid": "key-2"})
        no_kid = make_token(settings, key=rsa_key, algorithm="RS256")
        assert (await post_init(running.mcp_url, good)).status_code == 200
        assert (await post_init(running.mcp_url, good)).status_code == 200
        assert (await post_init(running.mcp_url, unknown)).status_code == 401
        assert (await post_init(running.mcp_url, no_kid)).status_code == 401
    assert _JwksHandler.hits >= 1


# -- health and metrics -------------------------------------------------------------------------------------


async def test_health_and_metrics(tmp_path: Path) -> None:
    settings = http_settings(tmp_path, metrics_allow_cidrs="127.0.0.0/8")
    with serve_in_thread(settings) as running:
        token = make_token(settings, sub="metrics-user")
        async with Client(mcp_transport(running.mcp_url, token)) as client:
            await client.call_tool("ping", {})
            await client.call_tool("server_status", {})
        async with httpx.AsyncClient() as http:
            live = await http.get(f"{running.url}/health/live", headers={"host": "10.1.2.3:8000"})
            ready = await http.get(f"{running.url}/health/ready")
            metrics = await http.get(f"{running.url}/metrics")
    assert live.status_code == 200 and live.json() == {"status": "live"}  # probes skip the Host check
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["checks"] == {"storage": True} and ready.json()["degraded_reasons"] == []
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'nt_mcp_tool_calls_total{outcome="ok",tool="ping"}' in text
    assert 'nt_mcp_tool_call_duration_seconds_bucket{le="0.005",outcome="ok",tool="server_status"}' in text
    assert 'nt_mcp_http_requests_total{method="POST",route="/mcp",status="200"}' in text


async def test_metrics_outside_the_allowed_networks_is_forbidden(tmp_path: Path) -> None:
    settings = http_settings(tmp_path, metrics_allow_cidrs="10.0.0.0/8, 192.168.0.0/16")
    with serve_in_thread(settings) as running:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{running.url}/metrics")
    assert response.status_code == 403


async def test_ready_says_degraded_and_tools_still_answer_when_redis_is_unreachable(tmp_path: Path) -> None:
    settings = http_settings(tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with serve_in_thread(settings) as running:
        token = make_token(settings, sub="degraded-user")
        async with Client(mcp_transport(running.mcp_url, token)) as client:
            pinged = await client.call_tool("ping", {"echo": "still here"})
        async with httpx.AsyncClient(timeout=15) as http:
            ready = await http.get(f"{running.url}/health/ready")
            live = await http.get(f"{running.url}/health/live")
    assert not pinged.is_error and pinged.structured_content["echo"] == "still here"
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert ready.json()["checks"] == {"storage": True, "redis": False}
    assert any("Redis unreachable" in reason for reason in ready.json()["degraded_reasons"])
    assert live.status_code == 200


# -- rate limits ---------------------------------------------------------------------------


async def test_http_rate_limit_per_address(tmp_path: Path) -> None:
    settings = http_settings(tmp_path, http_rate_limit="4/minute")
    with serve_in_thread(settings) as running:
        token = make_token(settings)
        statuses = [(await post_init(running.mcp_url, token)) for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 200, 429]
    assert statuses[0].headers["ratelimit-limit"] == "4" and statuses[0].headers["ratelimit-remaining"] == "3"
    limited = statuses[-1]
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.headers["ratelimit-remaining"] == "0"


async def test_failed_authentications_are_limited_tighter(tmp_path: Path) -> None:
    settings = http_settings(tmp_path, auth_failure_limit="3/minute")
    with serve_in_thread(settings) as running:
        bad = [(await post_init(running.mcp_url, "bad.token.here")).status_code for _ in range(3)]
        locked = await post_init(running.mcp_url, make_token(settings))  # even a good token waits now
    assert bad == [401, 401, 401]
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1


async def test_guard_budget_is_shared_by_two_replicas_on_one_redis(tmp_path: Path, redis_url: str) -> None:
    common = {"redis_url": redis_url, "rate_limit_per_minute": 3}
    first = http_settings(tmp_path / "a", **common)
    second = http_settings(tmp_path / "b", **common)
    token_a = make_token(first, sub="shared-principal")
    token_b = make_token(second, sub="shared-principal")
    with serve_in_thread(first) as replica_a, serve_in_thread(second) as replica_b:
        async with Client(mcp_transport(replica_a.mcp_url, token_a)) as client:
            first_two = [await client.call_tool("ping", {}) for _ in range(2)]
        async with Client(mcp_transport(replica_b.mcp_url, token_b)) as client:
            third = await client.call_tool("ping", {})
            fourth = await client.call_tool("ping", {})
            other_tool = await client.call_tool("server_status", {})
    assert not any(r.is_error for r in first_two) and not third.is_error
    assert fourth.is_error and error_of(fourth)["code"] == "RATE_LIMITED"
    assert not other_tool.is_error  # the budget is per principal and tool


# -- CLI ---------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_http_without_a_verifier_refuses_to_start(tmp_path: Path, transport: str) -> None:
    result = run_cli(tmp_path, "serve", "--transport", transport, "--port", str(free_port()))
    assert result.returncode == 2
    assert "NT_JWT_SECRET" in result.stderr and "Traceback" not in result.stderr


def test_secret_and_public_key_together_are_refused(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text("x")
    result = run_cli(
        tmp_path,
        "serve",
        "--transport",
        "http",
        NT_JWT_SECRET="s" * 32,
        NT_JWT_PUBLIC_KEY_FILE=str(tmp_path / "k.pem"),
    )
    assert result.returncode == 2 and "only one of" in result.stderr


def test_token_create_mints_a_verifiable_token(tmp_path: Path) -> None:
    secret = "cli-secret-0123456789abcdef-0123456789"
    result = run_cli(
        tmp_path,
        "token",
        "create",
        "--sub",
        "bob",
        "--scopes",
        "read,trade",
        "--ttl",
        "15m",
        NT_JWT_SECRET=secret,
    )
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token not in result.stderr
    claims = jwt.decode(token, secret, algorithms=["HS256"], audience="http://127.0.0.1:8000/mcp", issuer="nt-mcp")
    assert claims["sub"] == "bob" and claims["scope"] == "read trade"
    assert claims["exp"] - claims["iat"] == 900
    bad = run_cli(tmp_path, "token", "create", "--sub", "bob", "--scopes", "root", NT_JWT_SECRET=secret)
    assert bad.returncode == 2 and "unknown scope" in bad.stderr
    no_secret = run_cli(tmp_path, "token", "create", "--sub", "bob")
    assert no_secret.returncode == 2 and "NT_JWT_SECRET" in no_secret.stderr


def test_certs_dev_writes_a_pair_for_localhost(tmp_path: Path) -> None:
    from cryptography import x509

    result = run_cli(tmp_path, "certs", "dev")
    assert result.returncode == 0, result.stderr
    cert = x509.load_pem_x509_certificate((tmp_path / "certs" / "dev-cert.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert oct((tmp_path / "certs" / "dev-key.pem").stat().st_mode & 0o777) == "0o600"
    again = run_cli(tmp_path, "certs", "dev")
    assert again.returncode == 2 and "--force" in again.stderr
