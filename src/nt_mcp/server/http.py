"""The Starlette app behind the HTTP transports: /mcp (streamable HTTP) or /sse + /messages/ (legacy SSE),
health, metrics and RFC 9728 metadata, wrapped in the HTTP security layers.

Request path, outermost first::

    security headers + HTTP metrics      every response: nosniff, CSP, no-referrer, HSTS over TLS
    Host / Origin allow-lists            bad Host -> 421, bad Origin -> 403 (health probes exempt)
    body size limit                      -> 413
    router
      /health/live, /health/ready        no auth
      /metrics                           no auth, optionally limited to NT_METRICS_ALLOW_CIDRS
      /.well-known/oauth-protected-resource[/mcp]
      /mcp | /sse, /messages/            -> per-address rate limits (429) -> token-in-query refused
                                            -> bearer auth (401 + WWW-Authenticate) -> the SDK transport

With ``NT_HTTP_AUTH=none`` (loopback only, checked at start by `httpserve.build`) there is no bearer
step: every request is the local operator with ``NT_STDIO_SCOPES``, as on stdio; the Host/Origin
allow-lists (DNS-rebinding protection) stay on.

Streamable-HTTP streams are resumable: the in-memory `MemoryEventStore` numbers SSE events, every POST
stream opens with a priming event carrying ``retry`` (`events.RETRY_MS`), and a client reconnecting
with ``Last-Event-ID`` gets what it missed.

The services (storage, cache, rate limiter) are opened once per process in the app's lifespan, the
MCP server is built over them there, and the SDK's streamable-HTTP session manager runs inside it.
This is the one module that wires the SDK's HTTP pieces (`MCPServer.streamable_http_app`,
`sse_app`, `session_manager`, the bearer middleware) and sse-starlette's shutdown switch.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from limits import RateLimitItem, parse
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser, BearerAuthBackend
from mcp.server.auth.provider import TokenVerifier
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecuritySettings
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nt_mcp.config import Settings
from nt_mcp.infra.observability import AUTH_FAILURES, HTTP_IN_FLIGHT, HTTP_LATENCY, HTTP_REJECTIONS, HTTP_REQUESTS
from nt_mcp.infra.ratelimit import MemoryMovingWindow, RedisMovingWindow, WindowLimiter
from nt_mcp.infra.redis_link import RedisLink
from nt_mcp.server.app import NtMCPServer, build_server
from nt_mcp.server.auth import protected_resource_metadata, resource_metadata_url
from nt_mcp.server.events import RETRY_MS, MemoryEventStore
from nt_mcp.server.kernel_warmup import start_kernel_warm_up
from nt_mcp.tools.services import Services

log = logging.getLogger(__name__)
T = TypeVar("T")

ServerFactory = Callable[[Services], NtMCPServer]
MCP_PATHS = {"http": ("/mcp",), "sse": ("/sse", "/messages/")}
HEALTH_PATHS = ("/health/live", "/health/ready")
METADATA_PATHS = ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp")
KNOWN_ROUTES = frozenset({"/mcp", "/sse", "/messages/", "/metrics", *HEALTH_PATHS, *METADATA_PATHS})


def http_server(services: Services) -> NtMCPServer:
    """The product server for HTTP: every tool, no local operator (a bearer token is required)."""
    return build_server(services, local_operator=False)


def local_http_server(services: Services) -> NtMCPServer:
    """The server for ``NT_HTTP_AUTH=none`` on loopback: calls run as the local operator."""
    return build_server(services, local_operator=True)


def host_allowed(host: str | None, allowed: list[str]) -> bool:
    """``host`` equals an entry, or an entry ``name:*`` is ``name`` followed by ``:`` and a port (1-5
    digits) and nothing else: ``127.0.0.1:*`` lets ``127.0.0.1:8000`` in, not ``127.0.0.1:8000.evil.example``.
    Works the same for Origin values (``https://name:*``)."""
    if not host:
        return False
    for entry in allowed:
        if host == entry:
            return True
        if entry.endswith(":*"):
            name, sep, port = host.rpartition(":")
            if sep and name == entry[:-2] and port.isascii() and port.isdigit() and 1 <= len(port) <= 5:
                return True
    return False


async def _send_json(send: Send, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    payload = json.dumps(body).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


class SecurityHeadersMiddleware:
    """Adds the security headers to every response and counts requests by route and status."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
        ]
        if hsts:
            self.headers.append((b"strict-transport-security", b"max-age=63072000; includeSubDomains"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in KNOWN_ROUTES else "other"
        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in self.headers if k not in present]
                if b"cache-control" not in present:
                    extra.append((b"cache-control", b"no-store"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
                HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)
            await send(message)

        HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            HTTP_IN_FLIGHT.dec()
            HTTP_REQUESTS.labels(scope.get("method", ""), route, str(status)).inc()


class RequireBearer:
    """401 unless the bearer backend authenticated the request, with the challenge RFC 6750 asks for.

    No credentials at all: ``WWW-Authenticate: Bearer resource_metadata="..."`` with no error code
    (RFC 6750 3.1: the client did not try; RFC 9728 5.1 names the metadata), counted as
    ``auth_failures{reason="missing"}``. A bearer token that failed verification:
    ``error="invalid_token"`` (the verifier counted its reason).
    """

    def __init__(self, app: ASGIApp, metadata_url: str) -> None:
        self.app = app
        self.metadata_url = metadata_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if isinstance(scope.get("user"), AuthenticatedUser):
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization", "")
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            AUTH_FAILURES.labels("missing").inc()
            challenge = f'Bearer resource_metadata="{self.metadata_url}"'
            body = {"error": "unauthorized", "error_description": "send a bearer token in the Authorization header"}
        else:
            challenge = (
                'Bearer error="invalid_token", error_description="the token is invalid or expired", '
                f'resource_metadata="{self.metadata_url}"'
            )
            body = {"error": "invalid_token", "error_description": "the token is invalid or expired"}
        await _send_json(send, 401, body, {"www-authenticate": challenge})


class HostOriginMiddleware:
    """DNS-rebinding protection for every route but the health probes: Host -> 421, Origin -> 403."""

    def __init__(self, app: ASGIApp, *, hosts: list[str], origins: list[str]) -> None:
        self.app = app
        self.hosts = hosts
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in HEALTH_PATHS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not host_allowed(headers.get("host"), self.hosts):
            HTTP_REJECTIONS.labels("bad_host").inc()
            await _send_json(send, 421, {"error": "misdirected_request", "error_description": "Host not allowed"})
            return
        origin = headers.get("origin")
        if origin is not None and not host_allowed(origin, self.origins):
            HTTP_REJECTIONS.labels("bad_origin").inc()
            await _send_json(send, 403, {"error": "forbidden", "error_description": "Origin not allowed"})
            return
        await self.app(scope, receive, send)


class HttpRateLimits:
    """Per-client-address limits on the MCP endpoints, on `limits` (the library slowapi is built on).

    slowapi itself does not fit here: its middleware counts every request alike (it cannot count
    only failed authentications, its ``deduct_when`` works on decorated endpoints, and /mcp is a
    mounted ASGI app), it checks limits with the synchronous storage API from inside the event
    loop, and it reads RATELIMIT_* keys from ``.env`` by itself, around Settings. The same two
    limits here: every request spends ``NT_HTTP_RATE_LIMIT``; each 401 spends
    ``NT_AUTH_FAILURE_LIMIT``, and once that is spent the address gets 429 until the window moves.
    Redis storage when ``NT_REDIS_URL`` is set, so replicas share the budgets; while Redis is down
    (the services' `RedisLink`), process memory stands in, as for the guard's limits.
    """

    def __init__(self, settings: Settings, link: RedisLink | None) -> None:
        self.link = link
        self.memory = MemoryMovingWindow()
        self.redis = RedisMovingWindow(link.client) if link is not None else None
        self.requests: RateLimitItem = parse(settings.http_rate_limit)
        self.failures: RateLimitItem = parse(settings.auth_failure_limit)

    async def _on_storage(self, work: Callable[[WindowLimiter], Awaitable[T]]) -> T:
        if self.link is None or self.redis is None:
            return await work(self.memory)
        redis_limiter = self.redis
        return await self.link.run(lambda: work(redis_limiter), lambda: work(self.memory))

    async def check_failures(self, address: str) -> int | None:
        """Seconds to wait when ``address`` has spent its failed-authentication budget, else None."""

        async def check(limiter: WindowLimiter) -> int | None:
            if await limiter.test(self.failures, "nt-http", "auth-failure", address):
                return None
            stats = await limiter.get_window_stats(self.failures, "nt-http", "auth-failure", address)
            return max(1, math.ceil(stats.reset_time - time.time()))

        return await self._on_storage(check)

    async def record_failure(self, address: str) -> None:
        async def hit(limiter: WindowLimiter) -> bool:
            return await limiter.hit(self.failures, "nt-http", "auth-failure", address)

        await self._on_storage(hit)

    async def hit_request(self, address: str) -> tuple[bool, int, int]:
        """(allowed, remaining, reset seconds) for one more request from ``address``."""

        async def hit(limiter: WindowLimiter) -> tuple[bool, int, int]:
            allowed = await limiter.hit(self.requests, "nt-http", "request", address)
            stats = await limiter.get_window_stats(self.requests, "nt-http", "request", address)
            return allowed, stats.remaining, max(1, math.ceil(stats.reset_time - time.time()))

        return await self._on_storage(hit)


class HttpApp:
    """One process's HTTP front: build with settings and a token verifier, serve `.asgi` with uvicorn."""

    def __init__(
        self,
        settings: Settings,
        verifier: TokenVerifier | None,
        *,
        server_factory: ServerFactory | None = None,
        transport: str | None = None,
    ) -> None:
        """``verifier`` None: no token verification (``NT_HTTP_AUTH=none``; the caller checked the
        address), and the default server runs calls as the local operator."""
        self.settings = settings
        self.verifier = verifier
        self.server_factory = server_factory or (http_server if verifier is not None else local_http_server)
        self.transport = transport or (settings.transport if settings.transport != "stdio" else "http")
        if self.transport not in MCP_PATHS:
            raise ValueError(f"unknown HTTP transport {self.transport!r}")
        self.metrics_networks = [
            ipaddress.ip_network(part, strict=False) for part in settings.metrics_allow_cidrs.replace(",", " ").split()
        ]
        self.services: Services | None = None
        self.server: NtMCPServer | None = None
        self.limits: HttpRateLimits | None = None
        self._mcp: ASGIApp | None = None
        self.active_mcp_requests = 0
        self.draining = False
        self.asgi = self._build()

    # -- assembly ----------------------------------------------------------------------------
    def _build(self) -> Starlette:
        entry = _McpEntry(self)
        routes = [
            Route("/health/live", self.live, methods=["GET", "HEAD"]),
            Route("/health/ready", self.ready, methods=["GET", "HEAD"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            *[Route(path, self.resource_metadata, methods=["GET"]) for path in METADATA_PATHS],
            *[Route(path, entry) for path in MCP_PATHS[self.transport]],
        ]
        middleware = [
            Middleware(SecurityHeadersMiddleware, hsts=self.settings.tls_enabled),
            Middleware(
                HostOriginMiddleware,
                hosts=self.settings.host_allow_list,
                origins=self.settings.origin_allow_list,
            ),
            Middleware(RequestBodyLimitMiddleware, max_body_size=self.settings.max_request_body_bytes),
        ]
        return Starlette(routes=routes, middleware=middleware, lifespan=self._lifespan)

    def _protect(self, sdk_app: ASGIApp) -> ASGIApp:
        """Bearer auth in front of the SDK transport: the SDK's backend and auth context, our 401."""
        tracked = _Tracked(self, sdk_app)
        if self.verifier is None:
            return tracked
        required = RequireBearer(tracked, resource_metadata_url(self.settings))
        return AuthenticationMiddleware(AuthContextMiddleware(required), backend=BearerAuthBackend(self.verifier))

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        services = await Services.start(self.settings)
        try:
            server = self.server_factory(services)
            start_kernel_warm_up()
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=self.settings.host_allow_list,
                allowed_origins=self.settings.origin_allow_list,
            )
            size = self.settings.max_request_body_bytes
            if self.transport == "sse":
                sdk_app: ASGIApp = server.sse_app(
                    transport_security=security, max_request_body_size=size, host=self.settings.host
                )
            else:
                sdk_app = server.streamable_http_app(
                    transport_security=security,
                    max_request_body_size=size,
                    host=self.settings.host,
                    json_response=self.settings.http_json_response,
                    stateless_http=self.settings.http_stateless,
                    # resumable streams replay from this process's memory: only with sessions
                    event_store=None if self.settings.http_stateless else MemoryEventStore(),
                    retry_interval=RETRY_MS,
                )
            self.limits = HttpRateLimits(self.settings, services.redis)
            async with contextlib.AsyncExitStack() as stack:
                if self.transport == "http":
                    await stack.enter_async_context(server.session_manager.run())
                self.services, self.server, self._mcp = services, server, self._protect(sdk_app)
                log.info(
                    "http transport ready",
                    extra={"transport": self.transport, "tls": self.settings.tls_enabled},
                )
                yield
        finally:
            self._mcp = None
            self.services = None
            await services.close()
            log.info("services closed")

    # -- graceful shutdown ---------------------------------------------------------------------
    def busy(self) -> bool:
        guard = self.server.guard if self.server is not None else None
        guard_busy = guard is not None and guard.in_flight > 0
        return guard_busy or self.active_mcp_requests > 0

    async def drain(self, timeout_s: float) -> bool:
        """Refuse new MCP requests, then wait up to ``timeout_s`` for the running ones to finish.

        True when everything finished in time. Then end the SDK's open SSE streams (sse-starlette
        closes them when told the server is exiting), so the server can stop.
        """
        self.draining = True
        deadline = time.monotonic() + timeout_s
        while self.busy() and time.monotonic() < deadline:  # noqa: ASYNC110 - counters, not events
            await anyio.sleep(0.05)
        finished = not self.busy()
        await anyio.sleep(0.2)  # let the last results leave on their streams
        from sse_starlette.sse import AppStatus

        AppStatus.should_exit = True
        log.info("drained" if finished else "drain deadline reached", extra={"timeout_s": timeout_s})
        return finished

    # -- plain routes -------------------------------------------------------------------------
    async def live(self, _request: Request) -> Response:
        return JSONResponse({"status": "live"})

    async def ready(self, _request: Request) -> Response:
        services = self.services
        if services is None or self.draining:
            return JSONResponse({"status": "unavailable", "checks": {}}, status_code=503)
        health = await services.db.health()
        reasons = await services.degraded_reasons(health)
        checks = {"storage": health.ok}
        if services.redis is not None:
            checks["redis"] = services.redis.healthy
        body = {
            "checks": checks,
            "degraded_reasons": reasons,
            "circuit_breakers": services.upstreams.states(),
            "spool_pending": services.spool.count(),
        }
        if not checks["storage"]:  # most tools need storage: send traffic to another replica
            return JSONResponse({"status": "unavailable", **body}, status_code=503)
        # Redis down or a breaker open: still serving (memory stands in, the breaker answers), but say so
        return JSONResponse({"status": "degraded" if reasons else "ready", **body}, status_code=200)

    async def metrics(self, request: Request) -> Response:
        if self.metrics_networks:
            address = request.client.host if request.client else ""
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                ip = None
            if ip is None or not any(ip in network for network in self.metrics_networks):
                return PlainTextResponse("forbidden\n", status_code=403)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    async def resource_metadata(self, _request: Request) -> Response:
        return JSONResponse(protected_resource_metadata(self.settings))

    # -- the MCP endpoints ----------------------------------------------------------------------
    async def handle_mcp(self, scope: Scope, receive: Receive, send: Send) -> None:
        mcp_app, limits = self._mcp, self.limits
        if mcp_app is None or limits is None or self.draining:
            await _send_json(
                send,
                503,
                {"error": "unavailable", "error_description": "shutting down"},
                {"retry-after": "5"},
            )
            return
        address = (scope.get("client") or ("unknown", 0))[0]
        wait = await limits.check_failures(address)
        if wait is not None:
            HTTP_REJECTIONS.labels("auth_failure_limit").inc()
            await self._too_many(send, wait, limits.failures.amount, 0, "too many failed authentications")
            return
        allowed, remaining, reset = await limits.hit_request(address)
        if not allowed:
            HTTP_REJECTIONS.labels("rate_limit").inc()
            await self._too_many(send, reset, limits.requests.amount, 0, "rate limit exceeded")
            return
        rate_headers = [
            (b"ratelimit-limit", str(limits.requests.amount).encode()),
            (b"ratelimit-remaining", str(remaining).encode()),
            (b"ratelimit-reset", str(reset).encode()),
        ]
        status = 0

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []), *rate_headers]}
            await send(message)

        query = scope.get("query_string", b"").decode("latin-1").lower()
        if any(part.split("=", 1)[0] in {"access_token", "token"} for part in query.split("&")):
            HTTP_REJECTIONS.labels("token_in_query").inc()
            await limits.record_failure(address)
            await _send_json(
                send_counting,
                401,
                {
                    "error": "invalid_request",
                    "error_description": "send the token in the Authorization header",
                },
                {
                    "www-authenticate": 'Bearer error="invalid_request", error_description="token in query '
                    f'string refused", resource_metadata="{resource_metadata_url(self.settings)}"'
                },
            )
            return
        await mcp_app(scope, receive, send_counting)
        if status == 401:
            await limits.record_failure(address)

    async def _too_many(self, send: Send, wait: int, limit: int, remaining: int, why: str) -> None:
        await _send_json(
            send,
            429,
            {"error": "rate_limited", "error_description": why, "retry_after_s": wait},
            {
                "retry-after": str(wait),
                "ratelimit-limit": str(limit),
                "ratelimit-remaining": str(remaining),
                "ratelimit-reset": str(wait),
            },
        )


class _McpEntry:
    """An ASGI object (so Starlette's Route passes the raw scope through) for the MCP paths."""

    def __init__(self, owner: HttpApp) -> None:
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.owner.handle_mcp(scope, receive, send)


class _Tracked:
    """Counts authenticated MCP requests while they run, for the graceful-shutdown drain."""

    def __init__(self, owner: HttpApp, app: ASGIApp) -> None:
        self.owner = owner
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        self.owner.active_mcp_requests += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.owner.active_mcp_requests -= 1
