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
