"""The compiled trade columns and per-trade figures (`trade_figures`) are the NumPy expressions they
replaced, bit for bit: `pairwise_sum` is ``np.add.reduce`` on sizes around every block boundary of
NumPy's pairwise summation, and `TradeTable.from_records` and `compute_metrics`'s trade figures equal
the NumPy formulas (kept in `metrics.trade_metrics`, `metrics.exposure`) on random trade tables with
open trades, shorts, zero and NaN returns, and entry bars out of order."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from nt_mcp.domain.backtest import kernel
from nt_mcp.domain.backtest import metrics as m
from nt_mcp.domain.backtest.engine import TradeTable
from nt_mcp.domain.backtest.trade_figures import pairwise_sum, trade_columns, trade_figures
from nt_mcp.domain.jit import python_twin

SIZES = [*range(0, 300), 1_000, 1_023, 1_024, 1_025, 8_191, 8_192, 8_193, 20_000, 65_537, 250_001]


def _bits(x: Any) -> Any:
    return np.asarray(x, dtype=np.float64).view(np.int64)


def test_pairwise_sum_is_numpy_sum() -> None:
    rng = np.random.default_rng(0)
    for n in SIZES:
        a = rng.normal(0.0, 1.0, n) * 10.0 ** rng.integers(-8, 8, n)  # magnitudes that make order matter
        assert _bits(pairwise_sum(a, n)) == _bits(np.sum(a)), n
        assert _bits(pairwise_sum(a, n // 2)) == _bits(np.sum(a[: n // 2])), n
    a = rng.normal(0.0, 1.0, 3_000)
    assert _bits(python_twin(pairwise_sum)(a, 3_000)) == _bits(np.sum(a))


def _records(rng: np.random.Generator, n: int, n_bars: int) -> np.ndarray[Any, Any]:
    rec = np.empty((n, kernel.N_TRADE_COLS))
    entry = np.sort(rng.integers(0, n_bars - 1, n))
    rec[:, kernel.T_ENTRY_BAR] = entry
    rec[:, kernel.T_EXIT_BAR] = np.minimum(entry + rng.integers(0, 40, n), n_bars - 1)
    rec[:, kernel.T_ENTRY_PRICE] = rng.uniform(50, 150, n)
    rec[:, kernel.T_EXIT_PRICE] = rec[:, kernel.T_ENTRY_PRICE] * rng.normal(1.0, 0.02, n)
    rec[:, kernel.T_SIZE] = rng.integers(1, 100, n) * rng.choice([-1.0, 1.0], n)
    rec[:, kernel.T_COMMISSION] = rng.uniform(0, 3, n) * (rng.random(n) < 0.7)
    rec[:, kernel.T_REASON] = rng.integers(1, 7, n)
    same_price = rng.random(n) < 0.05  # zero returns, of both signs
    rec[same_price, kernel.T_EXIT_PRICE] = rec[same_price, kernel.T_ENTRY_PRICE]
    rec[same_price, kernel.T_COMMISSION] = 0.0
    if n:
        rec[-1, kernel.T_EXIT_BAR] = -1  # still open
        rec[-1, kernel.T_EXIT_PRICE] = np.nan
        rec[-1, kernel.T_REASON] = kernel.EXIT_OPEN
    return rec


def _numpy_columns(rec: np.ndarray[Any, Any], last_close: float) -> dict[str, Any]:
    """`TradeTable.from_records` as NumPy expressions (as it was written before `trade_columns`)."""
    exit_bar = rec[:, 1].astype(np.int64)
    entry, size, commission = rec[:, 2], rec[:, 4], rec[:, 5]
    marked = np.where(exit_bar < 0, last_close, rec[:, 3])
    return {
        "entry_bar": rec[:, 0].astype(np.int64),
        "exit_bar": exit_bar,
        "entry_price": entry,
        "exit_price": rec[:, 3],
        "size": size,
        "commission": commission,
        "pnl": size * (marked - entry) - commission,
        "return_pct": np.sign(size) * (marked / entry - 1.0) - commission / (np.abs(size) * entry),
        "exit_reason": rec[:, 6].astype(np.int64),
    }


@pytest.mark.parametrize("n", [0, 1, 7, 130, 2_000, 20_000])
def test_columns_and_figures_equal_the_numpy_formulas(n: int) -> None:
    rng = np.random.default_rng(n)
    n_bars = max(4 * n, 10)
    rec = _records(rng, n, n_bars)
    table = TradeTable.from_records(rec, np.arange(n_bars).astype("datetime64[ns]"), 101.5)
    for name, want in _numpy_columns(rec, 101.5).items():
        assert np.array_equal(getattr(table, name), want, equal_nan=True), name
        assert getattr(table, name).dtype == want.dtype, name
    closed = table.exit_bar >= 0
    got = trade_figures(table.entry_bar, table.exit_bar, table.pnl, table.return_pct, table.commission, n_bars)
    n_closed, win, best, worst, pf, expectancy, growth, covered, commission = got
    want = m.trade_metrics(table.pnl[closed], table.return_pct[closed])
    assert n_closed == int(closed.sum())
    figures = (win, best, worst, m._geometric_mean_of_growth(growth) if n_closed else math.nan, pf, expectancy)
    assert _bits(figures).tolist() == _bits(want).tolist()
    assert covered / n_bars == m.exposure(n_bars, table.entry_bar, table.exit_bar)
    assert _bits(commission) == _bits(table.commission.sum())
    twin = python_twin(trade_columns)(rec, 101.5)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(twin, trade_columns(rec, 101.5), strict=True))


def test_nan_returns_and_unordered_entries() -> None:
    rng = np.random.default_rng(9)
    rec = _records(rng, 300, 2_000)
    rec[5, kernel.T_ENTRY_PRICE] = 0.0  # 0 / 0 and x / 0: a NaN and an infinite return
    rec[5, kernel.T_EXIT_PRICE] = 0.0
    rec[9, kernel.T_ENTRY_PRICE] = 0.0
    table = TradeTable.from_records(rec, np.arange(2_000).astype("datetime64[ns]"), 80.0)
    closed = table.exit_bar >= 0
    out = trade_figures(table.entry_bar, table.exit_bar, table.pnl, table.return_pct, table.commission, 2_000)
    want = m.trade_metrics(table.pnl[closed], table.return_pct[closed])
    assert math.isnan(out[2]) and math.isnan(out[3]) and math.isnan(want[1]) and math.isnan(want[2])
    assert _bits([out[1], out[4], out[5]]).tolist() == _bits([want[0], want[4], want[5]]).tolist()
    order = rng.permutation(300)  # out of entry order: exposure is left to the sorting formula
    entry, exit_ = table.entry_bar[order], table.exit_bar[order]
    shuffled = trade_figures(entry, exit_, table.pnl[order], table.return_pct[order], table.commission[order], 2_000)
    assert shuffled[7] == -1
