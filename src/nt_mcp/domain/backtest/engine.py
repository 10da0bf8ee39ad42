"""Run a strategy's signals over bars: the Python face of the compiled loop in ``kernel``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from nt_mcp.domain.backtest import kernel
from nt_mcp.domain.backtest.config import BacktestConfig
from nt_mcp.domain.backtest.metrics import EquityPath, Metrics, compute_metrics
from nt_mcp.domain.backtest.trade_figures import trade_columns
from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.jit import compiled

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_EMPTY = np.empty(0, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Trade:
    """One round trip. ``size`` is signed (negative = short). For an open trade ``exit_bar``,
    ``exit_time`` and ``exit_price`` are None and ``pnl`` / ``return_pct`` are marked at the last close.

    ``pnl = size * (exit - entry) - commission``; ``return_pct`` (a fraction, named as backtesting.py)
    ``= sign(size) * (exit / entry - 1) - commission / (|size| * entry)``.
    """

    entry_bar: int
    exit_bar: int | None
    entry_time: np.datetime64
    exit_time: np.datetime64 | None
    entry_price: float
    exit_price: float | None
    size: float
    pnl: float
    return_pct: float
    commission: float
    exit_reason: str


@dataclass(frozen=True, slots=True)
class TradeTable:
    """All trades of a run as columns (cheap for many trades); index or iterate it for :class:`Trade`.

    ``exit_bar`` is -1 and ``exit_price`` NaN for a trade still open at the end. ``exit_reason``
    holds codes into :data:`kernel.EXIT_REASONS`.
    """

    entry_bar: IntArray
    exit_bar: IntArray
    entry_price: FloatArray
    exit_price: FloatArray
    size: FloatArray
    commission: FloatArray
    pnl: FloatArray
    return_pct: FloatArray
    exit_reason: IntArray
    timestamps: npt.NDArray[np.datetime64]

    @classmethod
    def from_records(cls, rec: FloatArray, timestamps: npt.NDArray[np.datetime64], last_close: float) -> TradeTable:
        """The table of the kernel's trade records (one compiled pass, `trade_figures.trade_columns`:
        the formulas are in the class docstring; an open trade is marked at ``last_close``)."""
        entry_bar, exit_bar, entry_price, exit_price, size, commission, pnl, return_pct, reason = compiled(
            trade_columns
        )(np.ascontiguousarray(rec, dtype=np.float64), float(last_close))
        return cls(
            entry_bar=entry_bar,
            exit_bar=exit_bar,
            entry_price=entry_price,
            exit_price=exit_price,
            size=size,
            commission=commission,
            pnl=pnl,
            return_pct=return_pct,
            exit_reason=reason,
            timestamps=timestamps,
        )

    @classmethod
    def from_columns(cls, ints: IntArray, floats: FloatArray, timestamps: npt.NDArray[np.datetime64]) -> TradeTable:
        """The table of `fused_sma.sma_crossover_backtest`'s columns: ``ints`` rows entry bar, exit bar,
        reason; ``floats`` rows entry price, exit price, size, commission, pnl, return_pct."""
        return cls(
            entry_bar=ints[0],
            exit_bar=ints[1],
            entry_price=floats[0],
            exit_price=floats[1],
            size=floats[2],
            commission=floats[3],
            pnl=floats[4],
            return_pct=floats[5],
            exit_reason=ints[2],
            timestamps=timestamps,
        )

    def __len__(self) -> int:
        return int(self.entry_bar.shape[0])

    def __getitem__(self, i: int) -> Trade:
        exit_bar = int(self.exit_bar[i])
        is_open = exit_bar < 0
        return Trade(
            entry_bar=int(self.entry_bar[i]),
            exit_bar=None if is_open else exit_bar,
            entry_time=self.timestamps[self.entry_bar[i]],
            exit_time=None if is_open else self.timestamps[exit_bar],
            entry_price=float(self.entry_price[i]),
            exit_price=None if is_open else float(self.exit_price[i]),
            size=float(self.size[i]),
            pnl=float(self.pnl[i]),
            return_pct=float(self.return_pct[i]),
            commission=float(self.commission[i]),
            exit_reason=kernel.EXIT_REASONS[int(self.exit_reason[i])],
        )

    def __iter__(self) -> Iterator[Trade]:
        return (self[i] for i in range(len(self)))


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """Equity at every close, the trades, the metrics, and orders the broker had to cancel
    (too little cash for even one unit, or a fixed quantity costing more than the cash)."""

    equity: FloatArray
    trades: TradeTable
    metrics: Metrics
    cancelled_orders: int
    config: BacktestConfig


def _as_signal(bars: Bars, signals: npt.ArrayLike, name: str) -> FloatArray:
    arr = np.ascontiguousarray(signals, dtype=np.float64)
    if arr.shape != (len(bars),):
        raise DomainValueError(name, f"must have one value per bar ({len(bars)}), got shape {arr.shape}")
    return arr


def run_backtest(
    bars: Bars,
    signals: npt.ArrayLike,
    config: BacktestConfig | None = None,
    *,
    stop_distance: npt.ArrayLike | None = None,
    first_trading_bar: int = 0,
) -> BacktestResult:
    """Simulate ``signals`` (per bar: +1 long, -1 short, 0 flat, NaN no change, decided at that
    bar's close and filled at the next bar's open) over ``bars``.

    ``stop_distance`` (optional, per bar, absolute price units) gives a trade entered on the
    signal of bar ``t`` a stop at ``entry -/+ stop_distance[t]`` (the tighter of it and
    ``config.stop_loss``). ``first_trading_bar`` is where buy & hold starts (the strategy's warm-up).
    See :mod:`nt_mcp.domain.backtest.kernel` for fill conventions.
    """
    cfg = config or BacktestConfig()
    sig = _as_signal(bars, signals, "signals")
    dist = _EMPTY if stop_distance is None else _as_signal(bars, stop_distance, "stop_distance")
    if not 0 <= first_trading_bar < len(bars):
        raise DomainValueError("first_trading_bar", f"must be a bar index, got {first_trading_bar}")
    equity = np.empty(len(bars), dtype=np.float64)
    rec, _, cancelled, bad = compiled(kernel.simulate)(
        bars.open,
        bars.high,
        bars.low,
        bars.close,
        sig,
        dist,
        *cfg.kernel_args(),
        equity,
    )
    if bad >= 0:
        raise DomainValueError("signals", f"must be +1, -1, 0 or NaN; bar {bad} has {sig[bad]}")
    return backtest_result(bars, equity, rec, int(cancelled), cfg, first_trading_bar)


def backtest_result(
    bars: Bars,
    equity: FloatArray,
    records: FloatArray,
    cancelled: int,
    config: BacktestConfig,
    first_trading_bar: int,
    path: EquityPath | None = None,
) -> BacktestResult:
    """A simulated run's result: its trade records as a `TradeTable`, and the metrics (``path``: the
    equity path if the simulation already tracked it)."""
    trades = TradeTable.from_records(records, bars.timestamps, float(bars.close[-1]))
    return result_of_trades(bars, equity, trades, cancelled, config, first_trading_bar, path)


def result_of_trades(
    bars: Bars,
    equity: FloatArray,
    trades: TradeTable,
    cancelled: int,
    config: BacktestConfig,
    first_trading_bar: int,
    path: EquityPath | None = None,
) -> BacktestResult:
    """A simulated run's result from its `TradeTable`: the metrics (see `backtest_result`)."""
    metrics = compute_metrics(
        equity,
        bars.ts_ns,
        bars.close,
        entry_bars=trades.entry_bar,
        exit_bars=trades.exit_bar,
        pnl=trades.pnl,
        returns=trades.return_pct,
        commissions=trades.commission,
        first_trading_bar=first_trading_bar,
        risk_free_rate=config.risk_free_rate,
        path=path,
    )
    return BacktestResult(equity, trades, metrics, cancelled, config)
