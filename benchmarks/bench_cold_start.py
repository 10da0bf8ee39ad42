"""Cold start: a fresh `nt-mcp serve` over stdio, timed to its first answer, with numba's cache warm and cleared.

    python benchmarks/bench_cold_start.py [--runs 5] [--server-python /path/to/python]

Per run and tool, one fresh server process (fresh data home, new SQLite file) is spawned and timed:
spawn -> initialize -> tools/list (the handshake), then the first ``run_backtest`` (sma_crossover 10/30
on GOOG, files source, equity PNG included) or the first ``optimize_strategy`` (sma_crossover, fast
5..50 step 5 x slow 20..200 step 20 on GOOG's first 70 %, the rest held out). Two cache states:

- warm: ``NUMBA_CACHE_DIR`` points at a directory an unmeasured run filled first (every later start
  loads the compiled kernels from it);
- cleared: ``NUMBA_CACHE_DIR`` is a new empty directory for each run, as right after ``pip install``
  (the kernels must be compiled).

Side by side, as the reference a user knows: a fresh Python process that imports backtesting.py and
runs the same strategy on GOOG once (``Backtest.run``), and once more with ``Backtest.optimize`` over
the same grid. GOOG comes from backtesting.py's test data (``pip install -e '.[test]'``).
``--server-python`` runs the server under another interpreter (e.g. a venv with only the runtime
dependencies).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from backtesting.test import GOOG
from mcp import Client, StdioServerParameters

BACKTEST = {"strategy": "sma_crossover", "symbol": "GOOG", "params": {"fast": 10, "slow": 30}}
OPTIMIZE = {
    "strategy": "sma_crossover",
    "symbol": "GOOG",
    "param_ranges": {"fast": {"start": 5, "stop": 50, "step": 5}, "slow": {"start": 20, "stop": 200, "step": 20}},
    "train_fraction": 0.7,
}
BACKTESTING_PY = """
import time
started = time.perf_counter()
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA

class SmaCross(Strategy):
    fast, slow = 10, 30
    def init(self):
        self.a = self.I(SMA, self.data.Close, self.fast)
        self.b = self.I(SMA, self.data.Close, self.slow)
    def next(self):
        if crossover(self.a, self.b):
            self.buy()
        elif crossover(self.b, self.a):
            self.position.close()

bt = Backtest(GOOG, SmaCross, cash=10_000, finalize_trades=False)
if MODE == "run":
    bt.run()
else:
    Backtest(GOOG.iloc[: int(len(GOOG) * 0.7)], SmaCross, cash=10_000).optimize(
        fast=range(5, 51, 5), slow=range(20, 201, 20), constraint=lambda p: p.fast < p.slow, maximize="Sharpe Ratio"
    )
"""


def write_goog(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "GOOG.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        for ts, row in GOOG.iterrows():
            prices = (repr(float(row[c])) for c in ("Open", "High", "Low", "Close"))
            writer.writerow([ts.isoformat(), *prices, int(row.Volume)])


async def one_run(
    python: str, root: Path, cache_dir: Path, tool: str, arguments: dict[str, Any]
) -> tuple[float, float]:
    """(seconds to the first answer, seconds to the end of the handshake) for one fresh server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NT_", "NUMBA_"))} | {
        "NT_DATA_HOME": str(root / "home"),
        "NT_DATA_DIR": str(root / "market"),
        "NT_LOG_LEVEL": "WARNING",
        "NUMBA_CACHE_DIR": str(cache_dir),
    }
    params = StdioServerParameters(command=python, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(root))
    started = time.perf_counter()
    async with Client(params, read_timeout_seconds=300) as client:
        await client.list_tools()
        ready = time.perf_counter() - started
        result = await client.call_tool(tool, arguments)
        total = time.perf_counter() - started
    if result.is_error:
        raise SystemExit(f"{tool} failed: {result.content}")
    return total, ready


def backtesting_py(mode: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"MODE = {mode!r}\n{BACKTESTING_PY}"], check=True, capture_output=True)
    return time.perf_counter() - started


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):6.2f} s  ({min(values):.2f}-{max(values):.2f})"


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--server-python", default=sys.executable)
    args = parser.parse_args()
    rows: dict[tuple[str, str], list[float]] = {}
    handshakes: dict[str, list[float]] = {"warm": [], "cleared": []}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        write_goog(base / "market")
        warm_cache = base / "numba-warm"
        counter = 0

        async def run(tool: str, arguments: dict[str, Any], cache: str) -> None:
            nonlocal counter
            counter += 1
            root = base / f"run{counter}"
            root.mkdir()
            (root / "market").symlink_to(base / "market")
            cache_dir = warm_cache if cache == "warm" else base / f"numba-cleared-{counter}"
            total, ready = await one_run(args.server_python, root, cache_dir, tool, arguments)
            rows.setdefault((tool, cache), []).append(total)
            handshakes[cache].append(ready)
            print(f"{tool:18s} numba cache {cache:7s}: answer after {total:5.2f} s (handshake done {ready:.2f} s)")

        await run("run_backtest", BACKTEST, "warm")  # fills the warm cache; not counted
        await run("optimize_strategy", OPTIMIZE, "warm")
        rows.clear()
        handshakes = {"warm": [], "cleared": []}
        for _ in range(args.runs):
            for tool, arguments in (("run_backtest", BACKTEST), ("optimize_strategy", OPTIMIZE)):
                for cache in ("warm", "cleared"):
                    await run(tool, arguments, cache)
    reference = {mode: [backtesting_py(mode) for _ in range(args.runs)] for mode in ("run", "optimize")}
    print(f"\nmedian (min-max) over {args.runs} runs, {os.cpu_count()} CPUs, server {args.server_python}")
    for tool, mode in (("run_backtest", "run"), ("optimize_strategy", "optimize")):
        warm, cleared = rows[(tool, "warm")], rows[(tool, "cleared")]
        ratio = statistics.median(cleared) / statistics.median(warm)
        print(f"{tool:18s} warm cache   {summary(warm)}")
        print(f"{tool:18s} cleared cache{summary(cleared)}   cleared / warm = {ratio:.2f}")
        print(f"backtesting.py {mode:9s} fresh process {summary(reference[mode])}")
    print(
        f"handshake (spawn -> initialize -> tools/list): warm {summary(handshakes['warm'])}, "
        f"cleared {summary(handshakes['cleared'])}"
    )


if __name__ == "__main__":
    asyncio.run(main())
