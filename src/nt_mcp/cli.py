"""The `nt-mcp` command: serve (stdio, http, sse), db upgrade, certs dev, token create, --version.

Exit codes: 0 done, 1 failed at run time, 2 bad configuration or usage (one line on stderr
naming the setting, never a traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pydantic

from nt_mcp import __version__
from nt_mcp.config import Settings, describe_settings_error, load_settings
from nt_mcp.infra.logs import configure_logging, redact

log = logging.getLogger("nt_mcp.cli")


class UsageError(Exception):
    """Bad configuration or arguments found after parsing: one line on stderr, exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nt-mcp", description="MCP server with real trading tools.")
    parser.add_argument("--version", action="version", version=f"nt-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--transport", choices=["stdio", "http", "sse"], help="overrides NT_TRANSPORT")
    serve.add_argument("--host", help="overrides NT_HOST (http/sse)")
    serve.add_argument("--port", type=int, help="overrides NT_PORT (http/sse)")

    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply migrations (and PostgreSQL performance indexes)")

    dlq = commands.add_parser("dlq", help="writes the database missed: the local spool and dead letters")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_commands.add_parser("list", help="show spooled writes and unresolved dead letters (JSON lines)")
    dlq_commands.add_parser("replay", help="replay the spool now and retry unresolved dead letters")

    certs = commands.add_parser("certs", help="TLS certificates")
    certs_commands = certs.add_subparsers(dest="certs_command", required=True)
    dev = certs_commands.add_parser("dev", help="write a self-signed pair for localhost into certs/")
    dev.add_argument("--dir", default="certs", help="output directory (default: certs)")
    dev.add_argument("--days", type=int, default=30, help="validity in days (default: 30)")
    dev.add_argument("--force", action="store_true", help="replace an existing pair")

    token = commands.add_parser("token", help="bearer tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    create = token_commands.add_parser("create", help="mint an HS256 token signed with NT_JWT_SECRET")
    create.add_argument("--sub", required=True, help="the principal (token subject)")
    create.add_argument("--scopes", default="read", help="comma separated: read,backtest,trade,admin")
    create.add_argument("--ttl", default="1h", help="lifetime: 900, 15m, 1h, 7d (default: 1h)")
    return parser


def _settings(overrides: dict[str, object]) -> Settings:
    """Environment and .env, with command-line flags taking precedence."""
    return Settings(**overrides) if overrides else load_settings()  # type: ignore[arg-type]


# A deferred server that has not been used (no tools/list, no call) registers its tools this long after
# it started serving anyway, so an idle client still gets the spool replayed and the jobs resumed.
START_ANYWAY_S = 2.0


async def _serve_stdio(settings: Settings) -> None:
    """Serve MCP on stdin/stdout until the client closes stdin, or SIGINT/SIGTERM arrives: then close the
    services (spool flushed, pools closed) and end the process at once. The SDK reads stdin in a worker
    thread that no cancellation reaches until a line or EOF arrives (at a terminal: never), and asyncio
    would wait for it forever.

    With a current tool listing in the cache (`server.listing_cache`) the server answers the handshake
    from it and opens the services and registers its tools right after (`server.app.deferred_server`);
    without one it does both before serving, as HTTP does, and stores the listing it built. A failure to
    open the services ends the server either way (exit code 1)."""
    from nt_mcp.server import listing_cache
    from nt_mcp.server.app import NtMCPServer, attach_services, build_server, deferred_server, local_operator_principal
    from nt_mcp.server.kernel_warmup import kernel_warm_up_running

    if TYPE_CHECKING:
        from nt_mcp.tools.services import Services

    key = listing_cache.listing_key(settings.toolsets)
    path = listing_cache.cache_path(settings.data_home, settings.toolsets)
    listing = listing_cache.load(path, key)
    loop = asyncio.get_running_loop()
    failed: asyncio.Future[None] = loop.create_future()
    services: Services | None = None
    server: NtMCPServer

    async def start_services() -> Services:
        nonlocal services
        from nt_mcp.tools.services import Services

        services = await Services.start(settings)
        log.info("services started", extra={"storage": services.db.backend, "cache": services.cache.name})
        return services

    if listing is None:
        _check_toolsets(settings)
        server = build_server(await start_services(), local_operator=True)  # stdio: the local operator
        listing_cache.store(path, key, await server.built_listing())
        server.start_when_used(kernel_warm_up_running)  # after the handshake: beside it, it slowed it (benchmarks)
    else:
        server = deferred_server(listing, local_principal=local_operator_principal(settings))
        cached = listing

        async def register() -> None:
            try:
                attach_services(server, await start_services())
                built = await server.built_listing()
                if built.to_json(key) != cached.to_json(key):  # the key missed a change: the registered tools win
                    log.warning("cached tool listing differed from the registered tools; replaced")
                    server.replace_listing(built)
                    listing_cache.store(path, key, built)
            except Exception as error:
                if not failed.done():
                    failed.set_exception(error)
                raise
            await kernel_warm_up_running()

        server.start_when_used(register)
        loop.call_later(START_ANYWAY_S, server.begin)
    stop = asyncio.Event()
    fatal: BaseException | None = None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        log.info(
            "serving",
            extra={
                "transport": settings.transport,
                "mode": settings.mode,
                "tool_listing": "cached" if server.cached_listing else "built",
            },
        )
        serving = asyncio.create_task(server.run_stdio_async())
        stopping = asyncio.create_task(stop.wait())
        waiting: set[asyncio.Future[Any]] = {serving, stopping, failed}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if failed.done():  # the services did not open: end as main() ends on an error, without waiting
            serving.cancel()  # for the stdin reader thread (see above)
            fatal = failed.exception()
        elif serving.done():
            serving.result()  # a failure of the transport surfaces here
            return
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        starting = server.starting
        if starting is not None and not starting.done():
            starting.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):  # closing anyway
                await starting
        if services is not None:
            await services.close()
    if fatal is not None:
        log.error("fatal", exc_info=fatal)
        print(_fatal_line(fatal), file=sys.stderr, flush=True)
        logging.shutdown()
        os._exit(1)
    log.info("stopped by a signal")
    logging.shutdown()
    os._exit(0)


def _fatal_line(error: BaseException) -> str:
    """The one stderr line of a run-time failure (exit code 1)."""
    return f"nt-mcp: {redact(type(error).__name__ + ': ' + str(error))}"


def _check_toolsets(settings: Settings) -> None:
    from nt_mcp.server.registry import UnknownToolsetError, toolset_names

    try:
        toolset_names(settings.toolsets)
    except UnknownToolsetError as error:
        raise UsageError(str(error)) from None


def _serve_http(settings: Settings) -> None:
    from nt_mcp.server import httpserve
    from nt_mcp.server.auth import AuthConfigError

    try:
        main, redirect = httpserve.build(settings, settings.transport)
    except (AuthConfigError, httpserve.ServeConfigError) as error:
        raise UsageError(str(error)) from None
    log.info("serving", extra={"transport": settings.transport, "mode": settings.mode, "url": settings.base_url})
    httpserve.serve(main, redirect)


def _certs_dev(args: argparse.Namespace) -> None:
    from pathlib import Path

    from nt_mcp.server.certs import write_dev_pair

    try:
        cert, key = write_dev_pair(Path(args.dir), days=args.days, force=args.force)
    except FileExistsError as error:
        raise UsageError(str(error)) from None
    print(f"NT_TLS_CERT_FILE={cert.resolve()}")
    print(f"NT_TLS_KEY_FILE={key.resolve()}")


def _token_create(settings: Settings, args: argparse.Namespace) -> None:
    from nt_mcp.server.auth import mint_token, parse_ttl

    scopes = [part.strip() for part in args.scopes.replace(" ", ",").split(",") if part.strip()]
    try:
        token = mint_token(settings, args.sub, scopes, parse_ttl(args.ttl))
    except ValueError as error:  # AuthConfigError included: no secret
        raise UsageError(str(error)) from None
    print(token)


async def _db_upgrade(settings: Settings) -> None:
    from nt_mcp.infra import migrate
    from nt_mcp.infra.db import Database

    db = Database(settings)
    try:
        for step in await migrate.upgrade(db):
            print(step)
        print(f"{db.backend} at revision {await migrate.current_revision(db)}")
    finally:
        await db.dispose()


async def _dlq(settings: Settings, command: str) -> None:
    from nt_mcp.infra.db import Database
    from nt_mcp.infra.spool import Replayer, Spool

    db = Database(settings)
    replayer = Replayer(db, Spool(settings.data_home / "spool"), settings.spool_max_attempts)
    try:
        if command == "list":  # the local ones first: they are readable while the database is down
            for entry in replayer.spool.pending():
                print(json.dumps({"where": "spool", **entry.describe()}))
            for entry in replayer.spool.local_dead_letters():
                print(json.dumps({"where": "local_dead_letters", **entry.describe(), "payload": entry.body()}))
            for path in replayer.spool.unreadable():
                print(json.dumps({"where": "spool_unreadable", "file": str(path)}))
            for letter in await replayer.dead_letters():
                print(json.dumps({"where": "dead_letters", **letter}, default=str))
        else:
            report = await replayer.replay_once()
            fixed, failed = await replayer.retry_dead_letters()
            print(
                json.dumps(
                    {
                        "spool_replayed": report.replayed,
                        "spool_dead_lettered": report.dead_lettered,
                        "spool_remaining": report.remaining,
                        "dead_letters_resolved": fixed,
                        "dead_letters_still_failing": failed,
                    }
                )
            )
    finally:
        await db.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {
        key: value
        for key, value in {
            "transport": getattr(args, "transport", None),
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
        }.items()
        if value is not None
    }
    try:
        settings = _settings(overrides)
    except pydantic.ValidationError as error:
        print(f"nt-mcp: {describe_settings_error(error)}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        if args.command == "serve":
            if settings.transport == "stdio" and sys.stdin.isatty():
                print(
                    "nt-mcp: serving MCP over stdio and waiting for an MCP client on stdin. This is a server: "
                    "start it from your MCP client's configuration (see the README, 'Connect a client'). "
                    "Ctrl-C quits.",
                    file=sys.stderr,
                    flush=True,
                )
            if settings.transport != "stdio":  # stdio checks it when it builds its tools (`_serve_stdio`)
                _check_toolsets(settings)
        if args.command == "serve" and settings.transport in ("http", "sse"):
            _serve_http(settings)
        elif args.command == "serve":
            asyncio.run(_serve_stdio(settings))
        elif args.command == "certs":
            _certs_dev(args)
        elif args.command == "token":
            _token_create(settings, args)
        elif args.command == "db":
            asyncio.run(_db_upgrade(settings))
        elif args.command == "dlq":
            asyncio.run(_dlq(settings, args.dlq_command))
    except KeyboardInterrupt:
        return 0
    except UsageError as error:
        print(f"nt-mcp: {redact(str(error))}", file=sys.stderr)
        return 2
    except Exception as error:
        log.exception("fatal")
        print(_fatal_line(error), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
