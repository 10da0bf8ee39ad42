"""Backtest speed: nt-mcp's engine against backtesting.py, backtrader, vectorbt and plain NumPy.

Run by hand, in one process, on the same seeded synthetic GBM minute bars::

    pip install -e '.[bench]'
    python benchmarks/bench_backtest.py [--bars 1000000] [--skip-slow]

Strategy everywhere: 10/30 SMA crossover, long only, all-in with whole units, no costs; a signal
at bar i's close fills at bar i+1's open. Peers:

- backtesting.py (``Backtest.run``; ``Backtest.optimize`` for the sweep) on ``--slow-bars`` bars
  (it is too slow for 1M); trades are compared with ours on the same bars.
- backtrader on ``--slow-bars`` bars (market orders fill at the next open by default).
- vectorbt ``Portfolio.from_signals`` with entries/exits shifted one bar and ``price=open`` so
  orders decided at bar i fill at bar i+1's open; ``size=inf`` buys all it can (fractional units,
  so only entry/exit bars are compared with ours). The sweep is vectorbt's broadcast over
  ``vbt.MA.run_combs``-style column products.
- a plain NumPy vectorised pass (signal -> position -> returns -> equity, fractional, no sizing).
- the minimal compiled loop (`minimal_loop`): the simplest numba loop for a long-only SMA crossover
  over close prices producing an equity curve (running sums, all-in at the close, no costs, no trade
  list, no metrics). It reads the closes and writes the equity once: the bound for a compiled
  backtest, which the issue asks the full pipeline to reach within 2x.

Timing: ``--rounds`` interleaved rounds (each round runs every engine once, in the same order), and
the median of each engine over the rounds; the sweep likewise with ``--sweep-rounds``. The printed
ratios: nt-mcp full pipeline ÷ minimal loop (as rates, so 1.0 = as fast as the bound), nt-mcp ÷
vectorbt, and the sweep's speed-up over vectorbt.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from backtesting import Strategy
from backtesting.lib import crossover
from numba import njit

from nt_mcp.adapters.data.synthetic import generate_bars
from nt_mcp.domain.backtest import BacktestConfig, run_backtest
from nt_mcp.domain.backtest.sweep import sweep_sma_crossover
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.strategies import STRATEGIES, run_strategy

FAST, SLOW = 10, 30
FASTS, SLOWS = list(range(5, 51, 5)), list(range(20, 201, 20))


def make_bars(n: int) -> Bars:
    """``n`` seeded one-minute GBM bars (weekdays, round the clock)."""
    days = int(n / 1440 * 7 / 5) + 3
    start = np.datetime64("2000-01-03")
    bars = generate_bars("BENCH", str(start), str(start + np.timedelta64(days, "D")), "1Min", seed=42)
    return bars.slice(0, n)


FULL = "nt-mcp engine (signals + backtest + metrics)"
MINIMAL = "minimal compiled loop (the bound)"
VBT = "vectorbt Portfolio.from_signals (+signals)"


Engines = dict[str, tuple[int, Callable[[], Any]]]


def interleaved(
    engines: dict[str, tuple[int, Callable[[], Any]]], rounds: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Run every engine once per round, ``rounds`` times; each engine's median seconds and last output."""
    times: dict[str, list[float]] = {name: [] for name in engines}
    outs: dict[str, Any] = {}
    for _ in range(rounds):
        for name, (_, fn) in engines.items():
            t0 = time.perf_counter()
            outs[name] = fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}, outs


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def ours(bars: Bars) -> Any:
    return run_strategy(bars, "sma_crossover", {"fast": FAST, "slow": SLOW}, BacktestConfig(cash=1e6))


def to_frame(bars: Bars) -> Any:
    return pd.DataFrame(
        {"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close, "Volume": bars.volume},
        index=pd.DatetimeIndex(bars.timestamps),
    )


def _sma(x: Any, n: int) -> Any:
    return pd.Series(x).rolling(n).mean()


class SmaCross(Strategy):  # type: ignore[misc]
    """backtesting.py's side: module level so ``optimize`` can pickle it to its worker processes."""

    n1 = FAST
    n2 = SLOW

    def init(self) -> None:
        self.sma1 = self.I(_sma, self.data.Close, self.n1)
        self.sma2 = self.I(_sma, self.data.Close, self.n2)

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()


def bt_strategy() -> Any:
    return SmaCross


def run_backtesting_py(bars: Bars) -> Any:
    from backtesting import Backtest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Backtest(to_frame(bars), bt_strategy(), cash=1e6, commission=0.0).run()


def run_backtrader(bars: Bars) -> float:
    import backtrader as btr

    class Cross(btr.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.cross = btr.ind.CrossOver(btr.ind.SMA(period=FAST), btr.ind.SMA(period=SLOW))

        def next(self) -> None:
            if self.cross > 0:
                self.close()
                self.buy(
                    size=int(self.broker.getvalue() // self.data.open[1])
                    if len(self.data.open.array) > len(self)
                    else 0
                )
            elif self.cross < 0:
                self.close()

    cerebro = btr.Cerebro(stdstats=False)
    cerebro.adddata(btr.feeds.PandasData(dataname=to_frame(bars)))
    cerebro.addstrategy(Cross)
    cerebro.broker.setcash(1e6)
    cerebro.run()
    return float(cerebro.broker.getvalue())


def vbt_signals(bars: Bars) -> tuple[Any, Any, Any]:
    sig = STRATEGIES["sma_crossover"].signals(bars, {"fast": FAST, "slow": SLOW})
    entries = pd.Series(np.r_[False, sig[:-1] == 1.0])  # decided at i, acted on at i+1
    exits = pd.Series(np.r_[False, sig[:-1] == 0.0])
    return entries, exits, pd.Series(bars.open)


def run_vectorbt(bars: Bars) -> Any:
    import vectorbt as vbt

    entries, exits, price = vbt_signals(bars)
    return vbt.Portfolio.from_signals(price, entries, exits, init_cash=1e6, size=np.inf, freq="1min")


def vbt_sweep(bars: Bars) -> Any:
    import vectorbt as vbt

    close = pd.Series(bars.close)
    fast = vbt.MA.run(close, FASTS, short_name="fast")
    slow = vbt.MA.run(close, SLOWS, short_name="slow")
    fm = fast.ma.values[:, :, None].repeat(len(SLOWS), axis=2).reshape(len(close), -1)
    sm = slow.ma.values[:, None, :].repeat(len(FASTS), axis=1).reshape(len(close), -1)
    keep = np.array([s > f for f in FASTS for s in SLOWS])
    fm, sm = fm[:, keep], sm[:, keep]
    up = (fm[:-1] < sm[:-1]) & (fm[1:] > sm[1:])
    down = (fm[:-1] > sm[:-1]) & (fm[1:] < sm[1:])
    entries = np.vstack([np.zeros((2, up.shape[1]), bool), up[:-1]])
    exits = np.vstack([np.zeros((2, up.shape[1]), bool), down[:-1]])
    pf = vbt.Portfolio.from_signals(pd.Series(bars.open), entries, exits, init_cash=1e6, size=np.inf, freq="1min")
    return pf.total_return()


@njit(cache=True)
def _minimal_loop(close, fast, slow, cash, equity):  # type: ignore[no-untyped-def]
    sf = 0.0
    ss = 0.0
    units = 0.0
    for i in range(close.shape[0]):
        c = close[i]
        sf += c
        ss += c
        if i >= fast:
            sf -= close[i - fast]
        if i >= slow:
            ss -= close[i - slow]
        if i >= slow - 1:
            above = sf * slow > ss * fast  # sf / fast > ss / slow
            if above and units == 0.0:
                units = cash / c
                cash = 0.0
            elif not above and units != 0.0:
                cash = units * c
                units = 0.0
        equity[i] = cash + units * c
    return equity


def minimal_loop(bars: Bars) -> Any:
    """The bound: one compiled pass over the closes into a fresh equity array (allocated here, as
    every engine allocates its own)."""
    return _minimal_loop(bars.close, FAST, SLOW, 1e6, np.empty(len(bars)))


def numpy_pass(bars: Bars) -> float:
    c = bars.close
    cs = np.cumsum(np.r_[0.0, c])
    fast = np.r_[np.full(FAST - 1, np.nan), (cs[FAST:] - cs[:-FAST]) / FAST]
    slow = np.r_[np.full(SLOW - 1, np.nan), (cs[SLOW:] - cs[:-SLOW]) / SLOW]
    state = np.where(fast > slow, 1.0, 0.0)
    pos = np.r_[0.0, 0.0, state[:-2]]  # held from the open after the signal
    r = np.r_[0.0, bars.open[1:] / bars.open[:-1] - 1.0]
    return float(np.cumprod(1.0 + pos * r)[-1])


def bt_optimize(bars: Bars) -> Any:
    from backtesting import Backtest

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(to_frame(bars), bt_strategy(), cash=1e6)
        return bt.optimize(
            n1=FASTS, n2=SLOWS, constraint=lambda p: p.n1 < p.n2, maximize="Sharpe Ratio", return_heatmap=True
        )


MEMORY_SNIPPET = """
import resource, sys
sys.path.insert(0, {here!r})
from bench_backtest import make_bars, ours
bars = make_bars({n})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ours(bars)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before / 1024, after / 1024)
"""


def peak_memory(n: int) -> tuple[float, float]:
    """Max RSS (MB) of a fresh process after generating ``n`` bars, and after also running one
    backtest on them (numba allocations are invisible to tracemalloc, so RSS is what counts)."""
    here = os.path.dirname(os.path.abspath(__file__))
    code = MEMORY_SNIPPET.format(here=here, n=n)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    before, after = out.stdout.split()[:2]
    return float(before), float(after)


COLD_SNIPPET = """
import time; t0 = time.perf_counter()
from backtesting.test import GOOG
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.strategies import run_strategy
b = Bars(GOOG.index.values, GOOG.Open.values, GOOG.High.values, GOOG.Low.values, GOOG.Close.values,
         GOOG.Volume.values.astype(float))
t1 = time.perf_counter()
r = run_strategy(b, "sma_crossover", {"fast": 10, "slow": 30})
print(f"{time.perf_counter() - t0:.3f} {time.perf_counter() - t1:.3f} {r.metrics.final_equity:.2f}")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--slow-bars", type=int, default=100_000, help="bars for backtesting.py / backtrader")
    ap.add_argument("--sweep-bars", type=int, default=100_000)
    ap.add_argument("--memory-bars", type=int, default=10_000_000)
    ap.add_argument("--rounds", type=int, default=9, help="interleaved rounds of the 1M-bar engines")
    ap.add_argument("--sweep-rounds", type=int, default=3, help="interleaved rounds of the sweeps")
    ap.add_argument("--skip-slow", action="store_true", help="skip backtesting.py optimize (~40 s)")
    args = ap.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {cpu}")

    bars = make_bars(args.bars)
    small = bars.slice(0, args.slow_bars)
    cold, res = timed(lambda: ours(bars))
    print(f"ours cold first call on {args.bars} bars (JIT cache load or compile): {cold:.3f} s")
    sig = STRATEGIES["sma_crossover"].signals(bars, {"fast": FAST, "slow": SLOW})
    run_vectorbt(small)  # numba warm-up of vectorbt
    minimal_loop(small)  # compile (or load) the bound
    core = "nt-mcp engine, backtest + metrics only"
    engines: Engines = {
        FULL: (args.bars, lambda: ours(bars)),
        core: (args.bars, lambda: run_backtest(bars, sig, BacktestConfig(cash=1e6))),
        MINIMAL: (args.bars, lambda: minimal_loop(bars)),
        "plain NumPy vectorised pass": (args.bars, lambda: numpy_pass(bars)),
        VBT: (args.bars, lambda: run_vectorbt(bars)),
    }
    medians, outs = interleaved(engines, args.rounds)
    res, pf = outs[FULL], outs[VBT]
    rows = [(name, engines[name][0], medians[name]) for name in engines]
    warm = medians[FULL]

    t_bt, st = timed(lambda: run_backtesting_py(small))
    rows.append(("backtesting.py Backtest.run", args.slow_bars, t_bt))
    t_btr, _ = timed(lambda: run_backtrader(small))
    rows.append(("backtrader Cerebro.run", args.slow_bars, t_btr))

    ours_small = ours(small)
    closed = ours_small.trades.exit_bar >= 0
    bt_tr = st["_trades"]
    same = (
        len(bt_tr) == int(closed.sum())
        and np.array_equal(bt_tr["EntryBar"].to_numpy(), ours_small.trades.entry_bar[closed])
        and np.array_equal(bt_tr["ExitBar"].to_numpy(), ours_small.trades.exit_bar[closed])
        and np.array_equal(bt_tr["Size"].to_numpy(), ours_small.trades.size[closed])
        and np.array_equal(bt_tr["EntryPrice"].to_numpy(), ours_small.trades.entry_price[closed])
        and np.array_equal(bt_tr["ExitPrice"].to_numpy(), ours_small.trades.exit_price[closed])
    )
    eq_diff = float(np.max(np.abs(st["_equity_curve"]["Equity"].to_numpy() / ours_small.equity - 1)))
    vbt_rec = pf.trades.records_readable
    vbt_entry = vbt_rec["Entry Timestamp"].to_numpy()
    vbt_same = np.array_equal(vbt_entry.astype(np.int64), res.trades.entry_bar)

    print()
    print(f"medians of {args.rounds} interleaved rounds")
    print(f"{'engine':48s} {'bars':>10s} {'seconds':>9s} {'bars/s':>12s} {'ours is x faster':>17s}")
    ours_rate = args.bars / warm
    for name, n, t in rows:
        rate = n / t
        print(f"{name:48s} {n:>10d} {t:>9.4f} {rate:>12,.0f} {ours_rate / rate:>17.2f}")
    print()
    print(
        f"trades identical to backtesting.py on {args.slow_bars} bars: {same} "
        f"({int(closed.sum())} closed trades; equity max rel diff {eq_diff:.1e})"
    )
    print(
        f"entry bars identical to vectorbt on {args.bars} bars: {vbt_same} "
        f"({len(vbt_entry)} vs {len(res.trades)} trades; vectorbt sizes are fractional)"
    )

    sweep_bars = bars.slice(0, args.sweep_bars)
    sweep_sma_crossover(sweep_bars.slice(0, 1000), FASTS, SLOWS)
    vbt_sweep(sweep_bars.slice(0, 1000))
    sweeps: Engines = {
        "nt-mcp": (args.sweep_bars, lambda: sweep_sma_crossover(sweep_bars, FASTS, SLOWS)),
        "vectorbt": (args.sweep_bars, lambda: vbt_sweep(sweep_bars)),
    }
    sweep_medians, sweep_outs = interleaved(sweeps, args.sweep_rounds)
    t_sw, t_vsw, sw = sweep_medians["nt-mcp"], sweep_medians["vectorbt"], sweep_outs["nt-mcp"]
    print()
    n_pairs, rounds = len(sw.metrics), args.sweep_rounds
    print(f"sweep of {n_pairs} (fast, slow) pairs on {args.sweep_bars} bars, medians of {rounds} rounds:")
    print(f"  nt-mcp sweep_sma_crossover      {t_sw:8.3f} s")
    print(f"  vectorbt broadcast from_signals {t_vsw:8.3f} s   (ours x{t_vsw / t_sw:.1f} faster)")
    if not args.skip_slow:
        t_opt, _ = timed(lambda: bt_optimize(sweep_bars))
        print(f"  backtesting.py optimize         {t_opt:8.3f} s   (ours x{t_opt / t_sw:.1f} faster)")
    else:
        print("  backtesting.py optimize         skipped (--skip-slow)")

    out = subprocess.run([sys.executable, "-c", COLD_SNIPPET], capture_output=True, text=True, check=True)
    total, run = out.stdout.split()[:2]
    print()
    print(f"fresh process, import + first GOOG backtest (JIT cache warm on disk): {total} s (of which the run {run} s)")

    print()
    print("ratios (same run):")
    at = f"at {args.bars} bars"
    print(f"  nt-mcp full pipeline / minimal compiled loop {at}: {medians[MINIMAL] / warm:.2f} (goal >= 0.5)")
    print(f"  nt-mcp full pipeline / vectorbt from_signals {at}: {medians[VBT] / warm:.2f}x (goal >= 5)")
    print(f"  90-pair sweep at {args.sweep_bars} bars, nt-mcp vs vectorbt: {t_vsw / t_sw:.2f}x (goal >= 10)")

    before, after = peak_memory(args.memory_bars)
    print(
        f"one backtest on {args.memory_bars} bars in a fresh process: max RSS {after:,.0f} MB "
        f"(of which generating the bars: {before:,.0f} MB)"
    )


if __name__ == "__main__":
    main()
