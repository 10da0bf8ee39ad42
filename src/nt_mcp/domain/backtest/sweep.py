"""Many parameter sets in one pass: the SMA crossover over a grid of (fast, slow) windows.

The compiled loop simulates every pair with the same engine as :func:`run_backtest` (same fills,
costs and stops), so a row of the sweep equals a single backtest with those parameters.

Memory and time are bounded by chunks, not by the grid: `plan_sweep` cuts the pairs (fasts-major)
into chunks whose arrays (one row of ``8 * n_bars`` bytes per moving average the chunk needs, plus
one equity row per pair) fit in ``max_chunk_bytes``, and whose work (pairs x bars) stays under
``max_chunk_work``. `sweep_pairs` runs one chunk: it computes the chunk's moving averages, simulates
its pairs and keeps only their metrics, so a chunk's arrays are freed before the next one starts.
A caller that runs chunks one by one (the optimisation tool, in a worker thread) can stop between
any two of them: a cancelled sweep frees its CPU and memory within one chunk. A `SmaCache` passed
from chunk to chunk keeps up to `SMA_CACHE_BYTES` of averages, so a window's average is computed once
per sweep rather than once per chunk.
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


@njit(cache=True, nogil=True)  # a sweep thread lets the event loop (and other threads) run
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


MAX_CHUNK_BYTES = 64 * 2**20
SMA_CACHE_BYTES = MAX_CHUNK_BYTES // 4  # averages kept between chunks (`SmaCache`): 20 windows of 100k bars
MAX_CHUNK_WORK = 25_000_000  # pairs x bars per chunk: well under a second of the compiled loop


def plan_sweep(
    fasts: Sequence[int],
    slows: Sequence[int],
    n_bars: int,
    *,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
    max_chunk_work: int = MAX_CHUNK_WORK,
    min_chunks: int = 10,
) -> list[list[tuple[int, int]]]:
    """The valid pairs (``slow > fast``, fasts-major, slows-minor) cut into chunks. A chunk holds
    `chunk_bytes` of arrays (windows it needs + its pairs + 1, times ``8 * n_bars``), at most ``max_chunk_bytes``
    (a single pair may exceed it: three rows are the least a pair needs), at most
    ``max_chunk_work`` pairs x bars, and at most 1/``min_chunks`` of the pairs (so progress can be
    reported about ``min_chunks`` times). Raises DomainValueError when no pair is valid."""
    f_list = _windows("fasts", fasts, n_bars)
    s_list = _windows("slows", slows, n_bars)
    pairs = [(f, s) for f in dict.fromkeys(f_list) for s in dict.fromkeys(s_list) if s > f]
    if not pairs:
        raise DomainValueError("slows", "no pair with slow > fast")
    row = 8 * n_bars
    max_pairs = max(1, min(max_chunk_work // max(1, n_bars), -(-len(pairs) // max(1, min_chunks))))
    chunks: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    windows: set[int] = set()
    for pair in pairs:
        needed = windows | set(pair)
        # the chunk's bytes with this pair: its windows, its pairs' equity rows and the signal row (`chunk_bytes`)
        if current and ((len(needed) + len(current) + 2) * row > max_chunk_bytes or len(current) >= max_pairs):
            chunks.append(current)
            current, needed = [], set(pair)
        current.append(pair)
        windows = needed
    chunks.append(current)
    return chunks


def chunk_bytes(n_bars: int, chunk: Sequence[tuple[int, int]]) -> int:
    """The arrays one chunk holds while it runs (moving averages, equity rows, the signal)."""
    windows = {w for pair in chunk for w in pair}
    return 8 * n_bars * (len(windows) + len(chunk) + 1)


class SmaCache:
    """Moving averages of one series kept between the chunks of a sweep (the chunks of `plan_sweep`
    share most of their windows: every chunk of a fast window needs all the slow ones), up to
    ``max_bytes`` of arrays; past that, a window's average is computed for its chunk only, as without
    a cache. Each entry also keeps the average's first defined bar (its part of the warm-up)."""

    def __init__(self, bars: Bars, max_bytes: int = SMA_CACHE_BYTES) -> None:
        self.bars = bars
        self.max_bytes = max_bytes
        self._entries: dict[int, tuple[FloatArray, int]] = {}

    def get(self, window: int) -> tuple[FloatArray, int]:
        """``sma(close, window)`` and the first bar where it is defined (as `warmup_of` counts it)."""
        entry = self._entries.get(window)
        if entry is None:
            average = sma(self.bars.close, window)
            entry = (average, warmup_of(average))
            if 8 * len(self.bars) * (len(self._entries) + 1) <= self.max_bytes:
                self._entries[window] = entry
        return entry


def sweep_pairs(
    bars: Bars,
    pairs: Sequence[tuple[int, int]],
    config: BacktestConfig | None = None,
    *,
    allow_short: bool = False,
    cache: SmaCache | None = None,
) -> SweepResult:
    """Backtest the SMA crossover for each ``(fast, slow)`` of ``pairs`` (one chunk of `plan_sweep`).
    ``cache``: averages kept from earlier chunks of the same bars (see `SmaCache`)."""
    cfg = config or BacktestConfig()
    if not pairs:
        raise DomainValueError("slows", "no pair to sweep")
    windows = sorted({w for pair in pairs for w in pair})
    _windows("windows", windows, len(bars))
    if cache is None or cache.bars is not bars:
        cache = SmaCache(bars, max_bytes=0)
    pos = {w: j for j, w in enumerate(windows)}
    smas = np.empty((len(windows), len(bars)))
    first = {}
    for j, w in enumerate(windows):
        smas[j], first[w] = cache.get(w)
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
                first_trading_bar=max(first[f], first[s]),
                risk_free_rate=cfg.risk_free_rate,
                periods=periods,
            )
        )
    return SweepResult(
        np.array([f for f, _ in pairs], dtype=np.int64),
        np.array([s for _, s in pairs], dtype=np.int64),
        metrics,
    )


def sweep_sma_crossover(
    bars: Bars,
    fasts: Sequence[int],
    slows: Sequence[int],
    config: BacktestConfig | None = None,
    *,
    allow_short: bool = False,
    max_chunk_bytes: int = MAX_CHUNK_BYTES,
) -> SweepResult:
    """Backtest the SMA crossover (see ``strategies.sma_crossover``) for every ``fast`` in
    ``fasts`` and ``slow`` in ``slows`` with ``slow > fast``; metrics for each pair, chunk by chunk
    (the averages computed once, kept up to `SMA_CACHE_BYTES` by a `SmaCache`)."""
    cache = SmaCache(bars)
    parts = [
        sweep_pairs(bars, chunk, config, allow_short=allow_short, cache=cache)
        for chunk in plan_sweep(fasts, slows, len(bars), max_chunk_bytes=max_chunk_bytes)
    ]
    return SweepResult(
        np.concatenate([p.fast for p in parts]),
        np.concatenate([p.slow for p in parts]),
        [m for p in parts for m in p.metrics],
    )
