"""Cold start: spawn a fresh `nt-mcp serve` over stdio and time its first run_backtest on GOOG (files source).

    python benchmarks/bench_cold_start.py [--runs 5] [--server-python /path/to/python]

Measures, per run, the wall time from spawning the server process to receiving the run_backtest result
(the MCP handshake included), the time until the handshake finished, and the handler's own time. Each
run uses a fresh data home (new SQLite file) and a fresh process. numba's on-disk cache is NOT cleared:
this is the "JIT cache warm" figure; the very first run after installing (or after editing a kernel)
compiles and is slower. GOOG comes from backtesting.py's test data (`pip install -e '.[test]'`).
`--server-python` runs the server under another interpreter, e.g. a venv holding only the runtime
dependencies (numba imports scipy.linalg on its first compiled call when SciPy is installed, ~0.25 s).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from backtesting.test import GOOG
from mcp import Client, StdioServerParameters


def write_goog(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "GOOG.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for ts, row in GOOG.iterrows():
            prices = (repr(float(row[c])) for c in ("Open", "High", "Low", "Close"))
            writer.writerow([ts.isoformat(), *prices, int(row.Volume)])


async def one_run(python: str, root: Path) -> tuple[float, float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NT_")} | {
        "NT_DATA_HOME": str(root / "home"),
        "NT_DATA_DIR": str(root / "market"),
        "NT_LOG_LEVEL": "WARNING",
    }
    params = StdioServerParameters(command=python, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(root))
    started = time.perf_counter()
    async with Client(params, read_timeout_seconds=300) as client:
        ready = time.perf_counter() - started
        result = await client.call_tool(
            "run_backtest", {"strategy": "sma_crossover", "symbol": "GOOG", "params": {"fast": 10, "slow": 30}}
        )
        total = time.perf_counter() - started
    if result.is_error:
        raise SystemExit(f"run_backtest failed: {result.structured_content}")
    return total, ready, float(result.structured_content["elapsed_s"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server-python", default=sys.executable)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        write_goog(Path(tmp) / "market")
        for i in range(args.runs):
            run_root = Path(tmp) / f"run{i}"
            run_root.mkdir()
            (run_root / "market").symlink_to(Path(tmp) / "market")
            rows.append(await one_run(args.server_python, run_root))
            total, ready, handler = rows[-1]
            print(f"run {i + 1}: answer after {total:.2f} s (handshake done {ready:.2f} s, handler {handler:.2f} s)")
    totals = [r[0] for r in rows]
    print(
        f"server {args.server_python}: median {statistics.median(totals):.2f} s, "
        f"min {min(totals):.2f} s, max {max(totals):.2f} s over {len(totals)} runs; {os.cpu_count()} CPUs"
    )


if __name__ == "__main__":
    asyncio.run(main())
