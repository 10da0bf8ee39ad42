"""The plain-NumPy metrics the fused, compiled ones in `nt_mcp.domain.backtest.metrics` replaced.

Kept verbatim (period_ends, drawdown, drawdown_duration, exposure with ``np.add.at``, compute_metrics)
as the reference the fused path is checked against (to 1e-12) in tests/unit/test_fused_metrics.py.
Not used by the package.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from nt_mcp.domain.backtest.metrics import Metrics

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_DAY_NS = 86_400 * 10**9


def period_ends(ts_ns: IntArray) -> tuple[IntArray, int]:
    """Indices of the last bar of each period, and the number of periods per year ``A``.

    The bar spacing is the median of the last 100 timestamp differences (backtesting.py's
    ``_data_period``). Spacing of exactly 7 days: weeks ending Sunday, ``A = 52``; 31 days:
    calendar months, ``A = 12``; 365 days: calendar years, ``A = 1``; otherwise calendar days, with
    ``A = 365`` if more than 60 % of 2/7 of the bars fall on a weekend (the market trades every
    day) and ``A = 252`` otherwise.
    """
    n = ts_ns.shape[0]
    if n < 2:
        return np.array([n - 1], dtype=np.int64), 252
    spacing_days = int(np.median(np.diff(ts_ns[-101:]))) // _DAY_NS
    days = ts_ns // _DAY_NS  # 1970-01-01 (day 0) was a Thursday
    if spacing_days == 7:
        key, per_year = (days - 4) // 7, 52  # day 4 was a Monday: weeks run Monday..Sunday
    elif spacing_days == 31:
        key, per_year = ts_ns.view("datetime64[ns]").astype("datetime64[M]").view(np.int64), 12
    elif spacing_days == 365:
        key, per_year = ts_ns.view("datetime64[ns]").astype("datetime64[Y]").view(np.int64), 1
    else:
        weekday = (days + 3) % 7  # Monday = 0
        weekend_share = float(np.mean(weekday >= 5))
        key, per_year = days, (365 if weekend_share > 2 / 7 * 0.6 else 252)
    ends = np.flatnonzero(np.diff(key) != 0)
    return np.append(ends, n - 1).astype(np.int64), per_year


def geometric_mean(returns: FloatArray) -> float:
    """``g = exp(mean(log(1 + r))) - 1``; 0 if any ``1 + r <= 0``; NaN if there are none."""
    if returns.shape[0] == 0:
        return math.nan
    growth = 1.0 + returns
    if np.any(growth <= 0):
        return 0.0
    return float(np.exp(np.log(growth).sum() / growth.shape[0]) - 1.0)


def drawdown(equity: FloatArray) -> FloatArray:
    """Drawdown at every bar: ``dd[t] = 1 - E[t] / max_{s<=t} E[s]`` (>= 0)."""
    return 1.0 - equity / np.maximum.accumulate(equity)


def max_drawdown(dd: FloatArray) -> float:
    """``-max_t dd[t]``: a negative fraction (0 with no drawdown)."""
    return -float(np.nan_to_num(dd.max()))


def drawdown_duration(dd: FloatArray, ts_ns: IntArray) -> tuple[int, float]:
    """Longest stretch between equity highs, in bars and in days.

    As backtesting.py: the bars where drawdown is zero, plus the last bar, split the curve;
    a stretch from one such bar ``a`` to the next ``b`` with ``b > a + 1`` lasts
    ``ts[b] - ts[a]``. Returns ``(0, 0.0)`` if equity never leaves its high.
    """
    marks = np.flatnonzero(dd == 0)
    if marks.shape[0] == 0 or marks[-1] != dd.shape[0] - 1:
        marks = np.append(marks, dd.shape[0] - 1)
    prev, nxt = marks[:-1], marks[1:]
    keep = nxt > prev + 1
    if not keep.any():
        return 0, 0.0
    bars = nxt[keep] - prev[keep]
    spans = ts_ns[nxt[keep]] - ts_ns[prev[keep]]
    return int(bars.max()), float(spans.max()) / _DAY_NS


def risk_metrics(
    equity: FloatArray,
    ts_ns: IntArray,
    risk_free_rate: float = 0.0,
    periods: tuple[IntArray, int] | None = None,
) -> tuple[float, float, float, float, float]:
    """Annualised return, annualised volatility, Sharpe, Sortino and CAGR.

    - annual return ``R = (1 + g)^A - 1`` (compounded geometric mean period return).
    - annual volatility ``V = sqrt((var(r_d, ddof=1) + (1 + g)^2)^A - (1 + g)^(2A))``
      (backtesting.py's formula for the volatility of a compounded return, not ``std * sqrt(A)``).
    - Sharpe ``(R - rf) / V``.
    - Sortino ``(R - rf) / (sqrt(mean(min(r_d, 0)^2)) * sqrt(A))``.
    - CAGR ``(E[n-1] / E[0])^(1 / years) - 1`` with ``years`` = calendar span (days plus seconds,
      ignoring sub-second parts) / 365.25.

    ``periods`` is :func:`period_ends` of ``ts_ns``, when the caller already has it.
    """
    ends, per_year = periods if periods is not None else period_ends(ts_ns)
    sampled = equity[ends]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = sampled[1:] / sampled[:-1] - 1.0
    r = r[~np.isnan(r)]  # 0 / 0 after ruin; backtesting.py drops these too
    g = geometric_mean(r)
    g = 0.0 if math.isnan(g) else g
    annual = (1.0 + g) ** per_year - 1.0
    var = float(r.var(ddof=1)) if r.shape[0] > 1 else math.nan
    with np.errstate(invalid="ignore"):
        vol = (
            math.sqrt((var + (1.0 + g) ** 2) ** per_year - (1.0 + g) ** (2 * per_year))
            if not math.isnan(var)
            else math.nan
        )
    sharpe = (annual - risk_free_rate) / vol if vol else math.nan
    downside = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2))) * math.sqrt(per_year) if r.shape[0] else math.nan
    sortino = (annual - risk_free_rate) / downside if downside else (math.inf if annual > 0 else math.nan)
    span_ns = int(ts_ns[-1] - ts_ns[0])
    years = (span_ns // _DAY_NS + (span_ns % _DAY_NS) // 10**9 / 86_400) / 365.25
    cagr = (equity[-1] / equity[0]) ** (1.0 / years) - 1.0 if years else math.nan
    return annual, vol, sharpe, sortino, float(cagr)


def trade_metrics(pnl: FloatArray, returns: FloatArray) -> tuple[float, float, float, float, float, float]:
    """Win rate, best, worst, average trade, profit factor and expectancy over closed trades.

    - win rate: share of trades with ``pnl > 0``.
    - best / worst trade: max / min trade return.
    - average trade: geometric mean of trade returns (backtesting.py's "Avg. Trade").
    - profit factor: ``sum(positive returns) / |sum(negative returns)|`` — on trade RETURNS, not
      cash, as backtesting.py computes it; NaN with no losing trade.
    - expectancy: arithmetic mean trade return.
    All NaN with no closed trades.
    """
    if pnl.shape[0] == 0:
        return (math.nan,) * 6
    losses = abs(float(returns[returns < 0].sum()))
    profit_factor = float(returns[returns > 0].sum()) / losses if losses else math.nan
    return (
        float(np.mean(pnl > 0)),
        float(returns.max()),
        float(returns.min()),
        geometric_mean(returns),
        profit_factor,
        float(returns.mean()),
    )


def exposure(n_bars: int, entry_bars: IntArray, exit_bars: IntArray) -> float:
    """Share of bars from a trade's entry bar to its exit bar inclusive (backtesting.py's
    "Exposure Time"). Unlike backtesting.py, a trade still open counts up to the last bar."""
    held = np.zeros(n_bars + 1, dtype=np.int64)
    np.add.at(held, entry_bars, 1)
    np.add.at(held, np.where(exit_bars < 0, n_bars - 1, exit_bars) + 1, -1)
    return float(np.mean(np.cumsum(held[:-1]) > 0))


def compute_metrics(
    equity: FloatArray,
    ts_ns: IntArray,
    close: FloatArray,
    *,
    entry_bars: IntArray,
    exit_bars: IntArray,
    pnl: FloatArray,
    returns: FloatArray,
    commissions: FloatArray,
    first_trading_bar: int = 0,
    risk_free_rate: float = 0.0,
    periods: tuple[IntArray, int] | None = None,
) -> Metrics:
    """All metrics for one run. Trade arrays hold every trade; ``exit_bars < 0`` marks open ones.

    - total return ``E[n-1] / E[0] - 1``.
    - buy & hold ``close[n-1] / close[w] - 1``, ``w = first_trading_bar`` (the first bar at which
      the strategy's indicators are defined, as backtesting.py).
    - max drawdown, its duration, exposure, risk and trade figures: see the functions above.
    - Calmar ``R / |max drawdown|`` (NaN without drawdown).
    - total commission: commissions of all trades, open ones included (entry leg only).
    - periods per year: the annualisation factor ``A`` of :func:`period_ends` that was used.

    ``periods``: :func:`period_ends` of ``ts_ns`` if already known (a sweep computes it once).
    """
    closed = exit_bars >= 0
    periods = periods if periods is not None else period_ends(ts_ns)
    annual, vol, sharpe, sortino, cagr = risk_metrics(equity, ts_ns, risk_free_rate, periods)
    dd = drawdown(equity)
    mdd = max_drawdown(dd)
    dd_bars, dd_days = drawdown_duration(dd, ts_ns)
    win, best, worst, avg, pf, expectancy = trade_metrics(pnl[closed], returns[closed])
    return Metrics(
        start_equity=float(equity[0]),
        final_equity=float(equity[-1]),
        peak_equity=float(equity.max()),
        total_return=float(equity[-1] / equity[0] - 1.0),
        buy_and_hold_return=float(close[-1] / close[first_trading_bar] - 1.0),
        cagr=cagr,
        annual_return=annual,
        annual_volatility=vol,
        sharpe=sharpe,
        sortino=sortino,
        calmar=annual / -mdd if mdd else math.nan,
        max_drawdown=mdd,
        max_drawdown_duration_bars=dd_bars,
        max_drawdown_duration_days=dd_days,
        exposure=exposure(equity.shape[0], entry_bars, exit_bars),
        n_trades=int(closed.sum()),
        win_rate=win,
        best_trade=best,
        worst_trade=worst,
        avg_trade=avg,
        profit_factor=pf,
        expectancy=expectancy,
        total_commission=float(commissions.sum()),
        periods_per_year=periods[1],
    )
