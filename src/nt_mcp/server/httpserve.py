"""Running the HTTP app under uvicorn: TLS context, the optional HTTP->HTTPS redirect listener, a
deadline for request headers, and a graceful shutdown on SIGTERM/SIGINT.

uvicorn has no timeout for reading a request's headers (its keep-alive timer only runs between
requests and restarts on every byte), so a client trickling header bytes would hold a connection
forever. `HeaderDeadlineProtocol` closes a connection whose request line and headers are not complete
within ``NT_HTTP_HEADER_TIMEOUT_S`` of its first byte (or of the connection, before any byte); once
the headers are in, the deadline is off, so slow bodies and long streams are unaffected.

Shutdown order: refuse new MCP requests (503, in the signal handler) -> stop accepting connections ->
wait for running tool calls (up to ``NT_SHUTDOWN_GRACE_S``) -> close the SDK's SSE streams -> let uvicorn close the
connections -> app lifespan ends (session manager stops, storage and cache pools close) -> exit 0.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
import ssl
from collections.abc import Callable
from types import FrameType
from typing import Any

import h11
import uvicorn
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from nt_mcp.config import Settings
from nt_mcp.server.auth import build_verifier
from nt_mcp.server.http import HttpApp, host_allowed

log = logging.getLogger(__name__)

_RESIDUAL_SHUTDOWN_S = 5  # after the drain: time for uvicorn to close connections before cancelling


class ServeConfigError(ValueError):
    """Settings that cannot give a safe HTTP server; the message names the setting."""


def tls_context(settings: Settings) -> ssl.SSLContext:
    """A server context from NT_TLS_CERT_FILE/NT_TLS_KEY_FILE: TLS 1.2 minimum (1.3 preferred by
    OpenSSL's negotiation), forward-secret AEAD suites only for 1.2, no compression, HTTP/1.1 ALPN."""
    assert settings.tls_cert_file is not None and settings.tls_key_file is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("ECDHE+AESGCM:ECDHE+CHACHA20")
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(str(settings.tls_cert_file), str(settings.tls_key_file))
    except (OSError, ssl.SSLError) as error:
        raise ServeConfigError(
            f"NT_TLS_CERT_FILE/NT_TLS_KEY_FILE cannot be loaded: {getattr(error, 'strerror', None) or error}"
        ) from None
    return context


class RedirectToHttps:
    """The plain-HTTP listener's whole app: 308 to the same path on the HTTPS port (allowed hosts only)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        host = Headers(scope=scope).get("host")
        if self.settings.public_url:
            base = self.settings.public_url
        elif host and host_allowed(host, self.settings.host_allow_list):
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            base = f"https://{name}:{self.settings.port}"
        else:
            await send({"type": "http.response.start", "status": 421, "headers": []})
            await send({"type": "http.response.body", "body": b"Host not allowed\n"})
            return
        query = scope.get("query_string", b"")
        location = base + scope.get("path", "/") + ("?" + query.decode("latin-1") if query else "")
        await send(
            {
                "type": "http.response.start",
                "status": 308,
                "headers": [(b"location", location.encode()), (b"content-length", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b""})


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for a request's headers (see the module docstring)."""

    header_timeout_s = 10.0  # set per server by `uvicorn_config` (a subclass carries the setting)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm_header_deadline()

    def _arm_header_deadline(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout_s, self._header_deadline_passed)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:  # a new request is starting: its headers have a deadline
            self._arm_header_deadline()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request line and headers are complete
            self._disarm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def _header_deadline_passed(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info(
                "connection closed: request headers not complete in time", extra={"timeout_s": self.header_timeout_s}
            )
            self.transport.close()


class GracefulServer(uvicorn.Server):
    """uvicorn.Server whose shutdown first drains the app's in-flight tool calls."""

    def __init__(self, config: uvicorn.Config, app: HttpApp, grace_s: float) -> None:
        super().__init__(config)
        self.http_app = app
        self.grace_s = grace_s

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """The SIGTERM/SIGINT handler: refuse new MCP requests at once (503, which a load balancer
        retries on another replica), not at uvicorn's next tick. uvicorn notices the signal up to 0.1 s
        later (its main loop polls ``should_exit``), and meanwhile kept serving new calls on the
        connections it had: seen as 6 of 20 calls served by a replica already told to stop."""
        self.http_app.draining = True
        super().handle_exit(sig, frame)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:  # stop accepting new connections first
            server.close()
        await self.http_app.drain(self.grace_s)
        await super().shutdown(sockets)


def uvicorn_config(settings: Settings, app: Any, *, port: int, tls: bool) -> uvicorn.Config:
    options: dict[str, Any] = {
        "host": settings.host,
        "port": port,
        "log_config": None,  # our JSON logging, configured by the CLI
        "access_log": False,  # request lines can carry query strings; we count requests in metrics
        "server_header": False,
        "lifespan": "on",
        "proxy_headers": settings.forwarded_allow_ips is not None,
        "forwarded_allow_ips": settings.forwarded_allow_ips or "",
        "timeout_graceful_shutdown": _RESIDUAL_SHUTDOWN_S,
        "http": type("HeaderDeadline", (HeaderDeadlineProtocol,), {"header_timeout_s": settings.http_header_timeout_s}),
    }
    if tls:
        context = tls_context(settings)
        options["ssl_context_factory"] = lambda _config, _default: context
    return uvicorn.Config(app, **options)


def is_loopback(host: str) -> bool:
    """``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def build(settings: Settings, transport: str) -> tuple[GracefulServer, uvicorn.Server | None]:
    """The main server (and the redirect listener when configured). Raises on unsafe settings:
    ``NT_HTTP_AUTH=none`` anywhere but a loopback address, or behind a trusted proxy."""
    if settings.http_auth == "none":
        if not is_loopback(settings.host):
            raise ServeConfigError(
                f"NT_HTTP_AUTH=none serves without tokens and is allowed only on a loopback address "
                f"(NT_HOST=127.0.0.1, ::1 or localhost), not {settings.host!r}; refusing to start"
            )
        if settings.forwarded_allow_ips:
            raise ServeConfigError(
                "NT_HTTP_AUTH=none cannot be combined with NT_FORWARDED_ALLOW_IPS (a proxy would expose the "
                "tokenless server); refusing to start"
            )
        verifier = None
    else:
        verifier = build_verifier(settings)
    if settings.http_redirect_port is not None and not settings.tls_enabled:
        raise ServeConfigError("NT_HTTP_REDIRECT_PORT redirects to HTTPS: it needs NT_TLS_CERT_FILE/KEY_FILE")
    app = HttpApp(settings, verifier, transport=transport)
    config = uvicorn_config(settings, app.asgi, port=settings.port, tls=settings.tls_enabled)
    main = GracefulServer(config, app, settings.shutdown_grace_s)
    redirect = None
    if settings.http_redirect_port is not None:
        redirect = uvicorn.Server(
            uvicorn_config(settings, RedirectToHttps(settings), port=settings.http_redirect_port, tls=False)
        )
        # both servers install their handler for the signals and the later one gets them: whichever it
        # is, the main server starts draining at once (`_serve`'s follow stops the other)
        redirect.handle_exit = main.handle_exit  # type: ignore[method-assign]
    return main, redirect


async def _serve(main: GracefulServer, redirect: uvicorn.Server | None) -> None:
    if redirect is None:
        await main.serve()
    else:

        async def follow() -> None:  # whichever stops first (a signal reaches one), stop the other
            while not (main.should_exit or redirect.should_exit):  # noqa: ASYNC110 - uvicorn's flags
                await asyncio.sleep(0.1)
            main.should_exit = redirect.should_exit = True

        await asyncio.gather(main.serve(), redirect.serve(), follow())
    if not main.started:
        raise RuntimeError("the HTTP server did not start (see the log above)")


def serve(main: GracefulServer, redirect: uvicorn.Server | None) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully and return (exit code 0)."""
    from sse_starlette.sse import AppStatus

    # We end the SDK's SSE streams ourselves once in-flight calls are done (HttpApp.drain);
    # sse-starlette would otherwise cut them, and the results they carry, at the first signal.
    AppStatus.disable_automatic_graceful_drain()  # type: ignore[no-untyped-call]
    # uvicorn re-raises the signal it caught after shutting down; make that a no-op so a
    # graceful stop is exit code 0, not death by SIGTERM.
    previous: dict[signal.Signals, Callable[..., Any] | int | None] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous[sig] = signal.signal(sig, lambda *_: None)
    try:
        asyncio.run(_serve(main, redirect))
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    log.info("stopped")
