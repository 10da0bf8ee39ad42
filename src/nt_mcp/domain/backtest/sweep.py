"""Many parameter sets in one pass: the SMA crossover over a grid of (fast, slow) windows.

Each distinct window's moving average is computed once; the compiled loop then simulates every
pair with the same engine as :func:`run_backtest` (same fills, costs and stops), so a row of the
sweep equals a single backtest with those parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from nt_mcp.domain.backtest import kernel
from nt_mcp.domain.backtest.config import BacktestConfig
from nt_mcp.domain.backtest.engine import TradeTable
from nt_mcp.domain.backtest.metrics import Metrics, compute_metrics, period_ends
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.jit import compiled
from nt_mcp.domain.strategies.indicators import crossover_signal, sma
from nt_mcp.domain.strategies.spec import warmup_of

FloatArray = npt.NDArray[np.float64]


@njit(cache=True)
def _sweep(  # type: ignore[no-untyped-def]
    open_,
    high,
    low,
    close,
    smas,
    fast_idx,
    slow_idx,
    down_value,
    cash,
    sizing,
    size,
    whole_units,
    c_pct,
    c_fixed,
    slippage,
    stop_loss,
    take_profit,
    trailing,
    close_at_end,
    equity,
):
    """Simulate pair ``p`` with signal ``crossover(smas[fast_idx[p]], smas[slow_idx[p]])`` into
    ``equity[p]``. Returns all trades stacked and each pair's trade count."""
    n_pairs = fast_idx.shape[0]
    counts = np.zeros(n_pairs, dtype=np.int64)
    signal = np.empty(close.shape[0])
    no_dist = np.empty(0)
    stacked = np.empty((256, 7))
    total = 0
    for p in range(n_pairs):
        crossover_signal(smas[fast_idx[p]], smas[slow_idx[p]], down_value, signal)
        trades, k, _, _ = kernel.simulate(
            open_,
            high,
            low,
            close,
            signal,
            no_dist,
            cash,
            sizing,
            size,
            whole_units,
            c_pct,
            c_fixed,
            slippage,
            stop_loss,
            take_profit,
            trailing,
            close_at_end,
            equity[p],
        )
        while total + k > stacked.shape[0]:
            bigger = np.empty((stacked.shape[0] * 2, 7))
            bigger[:total] = stacked[:total]
            stacked = bigger
        stacked[total : total + k] = trades
        total += k
        counts[p] = k
    return stacked[:total], counts


@dataclass(frozen=True, slots=True)
class SweepResult:
    """One row per valid (fast, slow) pair (pairs with ``slow <= fast`` are skipped), in the order
    fasts-major, slows-minor. ``metrics[j]`` belongs to ``(fast[j], slow[j])``."""

    fast: npt.NDArray[np.int64]
    slow: npt.NDArray[np.int64]
    metrics: list[Metrics]

    def table(self) -> list[dict[str, float | int]]:
        """Rows as plain dicts: ``fast``, ``slow`` and every metric."""
        return [
            {"fast": int(f), "slow": int(s), **m.as_dict()}
            for f, s, m in zip(self.fast, self.slow, self.metrics, strict=True)
        ]

    def best(self, metric: str = "sharpe") -> dict[str, float | int]:
        """The row with the highest ``metric`` (NaN counts as lowest)."""
        values = np.array([getattr(m, metric) for m in self.metrics], dtype=np.float64)
        if np.isnan(values).all():
            raise DomainValueError("metric", f"{metric} is undefined for every pair")
        return self.table()[int(np.nanargmax(values))]


def _windows(name: str, values: Sequence[int], n_bars: int) -> list[int]:
    out = []
    for v in values:
        if isinstance(v, bool) or not float(v).is_integer() or not 1 <= v < n_bars:
            raise DomainValueError(name, f"windows must be whole numbers in [1, {n_bars - 1}], got {v!r}")
        out.append(int(v))
    if not out:
        raise DomainValueError(name, "needs at least one window")
    return out


def sweep_sma_crossover(
    bars: Bars,
    fasts: Sequence[int],
    slows: Sequence[int],
    config: BacktestConfig | None = None,
    *,
    allow_short: bool = False,
) -> SweepResult:
    """Backtest the SMA crossover (see ``strategies.sma_crossover``) for every ``fast`` in
    ``fasts`` and ``slow`` in ``slows`` with ``slow > fast``; metrics for each pair."""
    cfg = config or BacktestConfig()
    f_list = _windows("fasts", fasts, len(bars))
    s_list = _windows("slows", slows, len(bars))
    pairs = [(f, s) for f in f_list for s in s_list if s > f]
    if not pairs:
        raise DomainValueError("slows", "no pair with slow > fast")
    windows = sorted({w for pair in pairs for w in pair})
    pos = {w: j for j, w in enumerate(windows)}
    smas = np.empty((len(windows), len(bars)))
    for j, w in enumerate(windows):
        smas[j] = sma(bars.close, w)
    fast_idx = np.array([pos[f] for f, _ in pairs], dtype=np.int64)
    slow_idx = np.array([pos[s] for _, s in pairs], dtype=np.int64)
    equity = np.empty((len(pairs), len(bars)))
    stacked, counts = compiled(_sweep)(
        bars.open,
        bars.high,
        bars.low,
        bars.close,
        smas,
        fast_idx,
        slow_idx,
        -1.0 if allow_short else 0.0,
        *cfg.kernel_args(),
        equity,
    )
    ends = np.concatenate(([0], np.cumsum(counts)))
    last_close = float(bars.close[-1])
    periods = period_ends(bars.ts_ns)
    metrics = []
    for p, (f, s) in enumerate(pairs):
        trades = TradeTable.from_records(stacked[ends[p] : ends[p + 1]], bars.timestamps, last_close)
        metrics.append(
            compute_metrics(
                equity[p],
                bars.ts_ns,
                bars.close,
                entry_bars=trades.entry_bar,
                exit_bars=trades.exit_bar,
                pnl=trades.pnl,
                returns=trades.return_pct,
                commissions=trades.commission,
                first_trading_bar=warmup_of(smas[pos[f]], smas[pos[s]]),
                risk_free_rate=cfg.risk_free_rate,
                periods=periods,
            )
        )
    return SweepResult(
        np.array([f for f, _ in pairs], dtype=np.int64),
        np.array([s for _, s in pairs], dtype=np.int64),
        metrics,
    )
