"""A fresh server lists its tools without importing what only some tools need: the handshake of a client
that never backtests, trades with Alpaca, draws a chart or fits a forecaster does not pay for those
libraries (numba, Alembic on a current database, alpaca-py, Pillow, scikit-learn, statsmodels, skfolio,
shin, SciPy, pandas, dask; the PostgreSQL dialect on SQLite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli import run_cli, server_env

# Loaded only by the tools that need them (or by a migration).
HEAVY = (
    "numba",
    "llvmlite",
    "alembic",
    "alpaca",
    "PIL",
    "sklearn",
    "statsmodels",
    "skfolio",
    "shin",
    "scipy",
    "pandas",
    "cvxpy",
    "dask",
    "distributed",
)

# Build the server as `nt-mcp serve` does (settings from the environment, services, the server), answer
# initialize + tools/list through the real MCP client in memory, then say which tools were listed and
# which of the heavy modules this process holds.
_PROBE = """
import asyncio, json, sys
from mcp import Client
from nt_mcp.config import load_settings
from nt_mcp.server.app import build_server
from nt_mcp.tools.services import Services

async def main():
    services = await Services.start(load_settings())
    try:
        async with Client(build_server(services)) as client:
            tools = [tool.name for tool in (await client.list_tools()).tools]
    finally:
        await services.close()
    heavy = sorted({name.split(".")[0] for name in sys.modules} & set(sys.argv[1:]))
    postgres_dialect = "sqlalchemy.dialects.postgresql" in sys.modules
    print(json.dumps({"tools": tools, "heavy": heavy, "postgres_dialect": postgres_dialect}))

asyncio.run(main())
"""


def _probe(tmp_path: Path, **settings: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *HEAVY],
        env=server_env(tmp_path / "data", **settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_tools_list_on_sqlite_loads_no_tool_only_library(tmp_path: Path) -> None:
    migrated = run_cli(tmp_path, "db", "upgrade")
    assert migrated.returncode == 0, migrated.stderr
    seen = _probe(tmp_path)
    assert {"run_backtest", "optimize_strategy", "optimize_portfolio", "train_forecaster"} <= set(
        seen["tools"]  # type: ignore[arg-type]
    ), seen["tools"]
    assert seen["heavy"] == []
    assert seen["postgres_dialect"] is False


def test_tools_list_on_postgresql_loads_no_tool_only_library(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    settings = {"NT_DATABASE_URL": pg_url, "NT_REDIS_URL": redis_url}
    migrated = run_cli(tmp_path, "db", "upgrade", **settings)
    assert migrated.returncode == 0, migrated.stderr
    seen = _probe(tmp_path, **settings)
    assert "run_backtest" in seen["tools"]  # type: ignore[operator]
    assert seen["heavy"] == []  # Alembic included: the schema is current, so no migration runs


# With the tool listing cached (`server.listing_cache`, written by the first start), `nt-mcp serve` answers
# initialize and tools/list before it imports any tool module, the guard, the services or a database
# driver: those load right after the handshake.
NOT_BEFORE_LISTING_WHEN_CACHED = (
    *HEAVY,
    "numpy",
    "sqlalchemy",
    "aiosqlite",
    "asyncpg",
    "redis",
    "httpx",
    "nt_mcp.server.registry",
    "nt_mcp.server.guard",
    "nt_mcp.server.resources",
    "nt_mcp.server.prompts",
    "nt_mcp.tools.services",
    "nt_mcp.tools.status",
    "nt_mcp.tools.trading",
    "nt_mcp.tools.backtesting",
    "nt_mcp.infra.db",
    "nt_mcp.domain",
    "nt_mcp.adapters",
)


def _imported_before_listing(tmp_path: Path, **settings: str) -> tuple[set[str], str]:
    """The modules a `nt-mcp serve` process had imported when tools/list answered (``-X importtime``),
    and the answer line."""
    log = tmp_path / "importtime.txt"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-X", "importtime", "-m", "nt_mcp", "serve"],
            env=server_env(tmp_path / "data", **settings),
            cwd=tmp_path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(
        '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
        '"capabilities":{},"clientInfo":{"name":"test","version":"1"}}}\n'
    )
    proc.stdin.flush()
    assert '"id":1' in proc.stdout.readline()
    proc.stdin.write(
        '{"jsonrpc":"2.0","method":"notifications/initialized"}\n{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n'
    )
    proc.stdin.flush()
    listing = proc.stdout.readline()
    proc.kill()  # what loads after the answer (the tools, the services) is not the handshake's
    proc.communicate(timeout=30)
    modules = {
        line.split("|")[2].strip()
        for line in log.read_text().splitlines()
        if line.startswith("import time:") and "self [us]" not in line
    }
    return modules, listing


def _assert_lean_cached_handshake(tmp_path: Path, **settings: str) -> None:
    migrated = run_cli(tmp_path, "db", "upgrade", **settings)
    assert migrated.returncode == 0, migrated.stderr
    cold, built = _imported_before_listing(tmp_path, **settings)  # writes the cache
    warm, cached = _imported_before_listing(tmp_path, **settings)
    assert cached == built and '"run_backtest"' in cached
    assert "nt_mcp.tools.trading" in cold and "sqlalchemy" in cold  # the probe sees imports at all
    loaded = {name for name in warm if name.split(".")[0] in NOT_BEFORE_LISTING_WHEN_CACHED}
    loaded |= {name for name in warm for prefix in NOT_BEFORE_LISTING_WHEN_CACHED if name.startswith(prefix + ".")}
    loaded |= set(NOT_BEFORE_LISTING_WHEN_CACHED) & warm
    assert loaded == set()


def test_a_cached_listing_answers_before_tools_and_storage_load_on_sqlite(tmp_path: Path) -> None:
    _assert_lean_cached_handshake(tmp_path)


def test_a_cached_listing_answers_before_tools_and_storage_load_on_postgresql(
    tmp_path: Path, pg_url: str, redis_url: str
) -> None:
    _assert_lean_cached_handshake(tmp_path, NT_DATABASE_URL=pg_url, NT_REDIS_URL=redis_url)
