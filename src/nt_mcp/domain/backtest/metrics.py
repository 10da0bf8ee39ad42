"""Performance metrics, following backtesting.py's ``_stats.compute_stats`` conventions.

All returns are FRACTIONS (0.05 = 5 %), where backtesting.py prints percentages. Notation:
``E[t]`` equity at bar ``t``'s close (``t = 0..n-1``), ``r_d`` the per-period returns of the
equity resampled to the last value of each calendar day (or week / month / year for coarser data,
see :func:`period_ends`), ``A`` the number of such periods per year, ``g`` the geometric mean of
``r_d``, ``rf`` the annual risk-free rate. Trade statistics use CLOSED trades only (as
backtesting.py does); a trade still open at the end is excluded from them.

Speed: the work that grows with the number of bars is done in two compiled passes, one over the
timestamps (`period_ends`, shared by a sweep's pairs) and one over the equity curve (`equity_path`:
peak, drawdown and its longest stretch, without materialising the drawdown series); everything else
works on the per-period or per-trade arrays, which are small. The kernels compute the same IEEE
operations as the NumPy expressions in their docstrings, so the figures are those of the plain-NumPy
formulas (tests/reference_metrics.py keeps them as the reference).
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass

import numpy as np
import numpy.typing as npt
from numba import njit

from nt_mcp.domain.backtest.trade_figures import pairwise_sum, trade_figures
from nt_mcp.domain.jit import compiled

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

_DAY_NS = 86_400 * 10**9


@dataclass(frozen=True, slots=True)
class Metrics:
    """One backtest's figures. Fractions, not percent. NaN where a figure is undefined."""

    start_equity: float
    final_equity: float
    peak_equity: float
    total_return: float
    buy_and_hold_return: float
    cagr: float
    annual_return: float
    annual_volatility: float
    sharpe: float
    sortino: float
    calmar: float
    max_drawdown: float
    max_drawdown_duration_bars: int
    max_drawdown_duration_days: float
    exposure: float
    n_trades: int
    win_rate: float
    best_trade: float
    worst_trade: float
    avg_trade: float
    profit_factor: float
    expectancy: float
    total_commission: float
    periods_per_year: int  # A, the annualisation factor used (see period_ends)

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


@njit(cache=True)
def _first_at_or_after(ts_ns, start, value):  # type: ignore[no-untyped-def]
    """The first index ``j >= start`` with ``ts_ns[j] >= value`` (``len(ts_ns)`` if none), for strictly
    increasing ``ts_ns`` with ``ts_ns[start - 1] < value``: galloping (1, 2, 4, ... steps ahead), then
    bisection, so a day of ``b`` bars costs about ``2 log2(b)`` reads instead of ``b``."""
    n = ts_ns.shape[0]
    lo = start  # every index < lo is below value
    step = 1
    hi = start
    while hi < n and ts_ns[hi] < value:
        lo = hi + 1
        hi = start + step
        step *= 2
    if hi > n:
        hi = n
    while lo < hi:  # the answer is in [lo, hi]: ts_ns[hi] >= value or hi == n
        mid = (lo + hi) // 2
        if ts_ns[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _day_period_ends(ts_ns, weekly):  # type: ignore[no-untyped-def]
    """The last bar of each calendar day (``weekly``: of each week running Monday..Sunday, key
    ``(day - 4) // 7``), and how many bars fall on a Saturday or Sunday (weekday ``(day + 3) % 7 >= 5``,
    day 0 = 1970-01-01 was a Thursday). Integer ``//`` and ``%`` floor as in Python. The timestamps
    strictly increase (`Bars` checks it), so each day's bars are one run, whose end is found by a galloping
    search (`_first_at_or_after`): a few reads per day, not one per bar. It first tries the previous day's
    bar count (``ts[g - 1] < next day <= ts[g]`` identifies the end exactly): two reads on regular bars,
    where the galloping search's reads are a chain of cache misses on a cold cache."""
    n = ts_ns.shape[0]
    days = (ts_ns[n - 1] // 86_400_000_000_000) - (ts_ns[0] // 86_400_000_000_000) + 1
    ends = np.empty(min(n, days), dtype=np.int64)  # one end per calendar day at most
    k = 0
    weekend = 0
    prev = 0
    i = 0
    run = 0  # the previous day's bar count: the guess for this day's (exact when the spacing is regular)
    while i < n:
        day = ts_ns[i] // 86_400_000_000_000
        nxt = (day + 1) * 86_400_000_000_000
        g = i + run
        guessed = run > 0 and g < n and ts_ns[g - 1] < nxt and ts_ns[g] >= nxt  # g: the next day's first bar
        j = g if guessed else _first_at_or_after(ts_ns, i + 1, nxt)  # bars i..j-1 fall on this day
        run = j - i
        if (day + 3) % 7 >= 5:
            weekend += j - i
        key = (day - 4) // 7 if weekly else day
        if i > 0 and key != prev:
            ends[k] = i - 1
            k += 1
        prev = key
        i = j
    ends[k] = n - 1
    return ends[: k + 1].copy(), weekend


def _median_step(ts_ns: IntArray) -> int:
    """``int(np.median(np.diff(ts_ns)))`` without ``np.median``'s overhead: the middle step, or the mean of
    the two middle ones as ``np.mean`` takes it (``(0.0 + a + b) / 2`` in float64), truncated."""
    steps = np.sort(np.diff(ts_ns)).tolist()
    mid = len(steps) // 2
    if len(steps) % 2:
        return int(float(steps[mid]))
    return int((0.0 + float(steps[mid - 1]) + float(steps[mid])) / 2)


def period_ends(ts_ns: IntArray) -> tuple[IntArray, int]:
    """Indices of the last bar of each period, and the number of periods per year ``A``.

    The bar spacing is the median of the last 100 timestamp differences (backtesting.py's
    ``_data_period``). Spacing of exactly 7 days: weeks ending Sunday, ``A = 52``; 31 days:
    calendar months, ``A = 12``; 365 days: calendar years, ``A = 1``; otherwise calendar days, with
    ``A = 365`` if more than 60 % of 2/7 of the bars fall on a weekend (the market trades every
    day) and ``A = 252`` otherwise. Days and weeks: one compiled pass (`_day_period_ends`).
    """
    n = ts_ns.shape[0]
    if n < 2:
        return np.array([n - 1], dtype=np.int64), 252
    spacing_days = _median_step(ts_ns[-101:]) // _DAY_NS
    if spacing_days in (31, 365):
        unit = "datetime64[M]" if spacing_days == 31 else "datetime64[Y]"
        key = ts_ns.view("datetime64[ns]").astype(unit).view(np.int64)
        ends = np.flatnonzero(np.diff(key) != 0)
        return np.append(ends, n - 1).astype(np.int64), (12 if spacing_days == 31 else 1)
    weekly = spacing_days == 7
    day_ends, weekend = compiled(_day_period_ends)(np.ascontiguousarray(ts_ns, dtype=np.int64), weekly)
    if weekly:
        return day_ends, 52
    return day_ends, (365 if weekend / n > 2 / 7 * 0.6 else 252)


def geometric_mean(returns: FloatArray) -> float:
    """``g = exp(mean(log(1 + r))) - 1``; 0 if any ``1 + r <= 0``; NaN if there are none."""
    return _geometric_mean_of_growth(1.0 + returns)


def _geometric_mean_of_growth(growth: FloatArray) -> float:
    """`geometric_mean` from the growth factors ``1 + r``."""
    if growth.shape[0] == 0:
        return math.nan
    if np.any(growth <= 0):
        return 0.0
    return float(np.exp(np.log(growth).sum() / growth.shape[0]) - 1.0)


@njit(cache=True, inline="always")
def path_step(t, e, last, ts_ns, top, deepest, q_min, bound, any_nan, mark, long_bars, long_ns, found):  # type: ignore[no-untyped-def]
    """One bar of `_equity_path` that is not skipped: the state (``top`` .. ``found``, see there) after the
    equity ``e`` of bar ``t`` (``last`` is the last bar's index; ``ts_ns`` is read at the marks only). The
    caller skips a bar with ``e < top and e >= bound and t < last`` (it changes nothing). Kernels that
    produce the equity bar by bar (`nt_mcp.domain.backtest.fused_sma`) call it as they go, so their
    figures are `_equity_path`'s. ``top`` before bar 0 is ignored (bar 0 sets it)."""
    if t == 0:
        top = e
    elif top == top and (e != e or e > top):
        top = e
        bound = q_min * top * (1.0 + 1e-15)
    normal = 0.0 < top < np.inf
    is_mark = t == last
    if normal and e == top:
        is_mark = True
        if deepest < 0.0:
            deepest = 0.0
            q_min = 1.0
            bound = top * (1.0 + 1e-15)
    elif not normal or not e >= bound:
        q = e / top if top != 0.0 else np.nan
        dd = 1.0 - q
        if dd != dd:
            any_nan = True
        elif dd > deepest:
            deepest = dd
            if normal:
                q_min = q
                bound = q_min * top * (1.0 + 1e-15)
        if not normal:
            q_min = np.inf
            bound = np.inf
        if dd == 0.0:
            is_mark = True
    if is_mark:
        if mark >= 0 and t > mark + 1:
            found = True
            long_bars = max(long_bars, t - mark)
            long_ns = max(long_ns, ts_ns[t] - ts_ns[mark])
        mark = t
    return top, deepest, q_min, bound, any_nan, mark, long_bars, long_ns, found


@njit(cache=True)
def _equity_path(equity, ts_ns):  # type: ignore[no-untyped-def]
    """One pass over the equity curve, with ``top[t] = max_{s<=t} E[s]`` (NaN once any E is NaN, as
    ``np.maximum.accumulate``) and ``dd[t] = 1 - E[t] / top[t]`` (NaN where ``top[t]`` is 0). Returns
    the peak ``top[n-1]``, ``max_t dd[t]`` (NaN if any dd is NaN, as ``dd.max()``), and over the
    stretches between consecutive marks (bars where ``dd == 0``, plus the last bar) that span more than
    one bar: the longest in bars, the longest in nanoseconds, and whether there is any.

    Without dividing on every bar: with ``0 < top < inf``, ``E == top`` gives ``dd == 0`` exactly and
    ``E < top`` gives ``dd > 0``; ``1 - q`` rounds monotonically, so ``dd`` can beat the deepest so far
    (reached at quotient ``q_min``) only if ``E / top < q_min``, i.e. ``E < q_min * top``: the division
    runs only below ``bound = q_min * top * (1 + 1e-15)`` (above the rounding of the product), or for
    any value outside that case (NaN, a top of 0, negative or infinite: then ``bound`` is inf). A bar
    with ``bound <= E < top`` (not the last) changes nothing and is skipped after two comparisons;
    the others are `path_step`."""
    n = equity.shape[0]
    top = equity[0]
    deepest = -np.inf
    q_min = np.inf
    bound = np.inf
    any_nan = False
    mark = -1
    long_bars = 0
    long_ns = ts_ns[0] - ts_ns[0]
    found = False
    last = n - 1
    for t in range(n):
        e = equity[t]
        if e < top and e >= bound and t < last:
            continue
        top, deepest, q_min, bound, any_nan, mark, long_bars, long_ns, found = path_step(
            t, e, last, ts_ns, top, deepest, q_min, bound, any_nan, mark, long_bars, long_ns, found
        )
    return top, (np.nan if any_nan else deepest), long_bars, long_ns, found


@dataclass(frozen=True, slots=True)
class EquityPath:
    """What the equity curve says beyond its ends: peak, max drawdown (a negative fraction) and the
    longest drawdown in bars and days."""

    peak: float
    max_drawdown: float
    max_drawdown_duration_bars: int
    max_drawdown_duration_days: float

    @classmethod
    def from_kernel(cls, top: float, deepest: float, bars: int, span_ns: int, found: bool) -> EquityPath:
        """The figures from what `_equity_path` returns (peak, deepest drawdown, longest stretch)."""
        worst = float(deepest)  # np.nan_to_num's mapping, for a scalar: NaN -> 0, +-inf -> +-largest double
        if math.isnan(worst) or math.isinf(worst):
            worst = 0.0 if math.isnan(worst) else math.copysign(sys.float_info.max, worst)
        return cls(
            float(top),
            -worst,
            int(bars) if found else 0,
            float(span_ns) / _DAY_NS if found else 0.0,
        )


def equity_path(equity: FloatArray, ts_ns: IntArray) -> EquityPath:
    """Peak equity ``max_t E[t]``; max drawdown ``-max_t dd[t]`` with ``dd[t] = 1 - E[t] / max_{s<=t} E[s]``
    (0 with no drawdown); and the longest stretch between equity highs, as backtesting.py: the bars
    where drawdown is zero, plus the last bar, split the curve; a stretch from one such bar ``a`` to
    the next ``b`` with ``b > a + 1`` lasts ``b - a`` bars and ``ts[b] - ts[a]``; ``(0, 0.0)`` if equity
    never leaves its high. One compiled pass (`_equity_path`), no drawdown array."""
    return EquityPath.from_kernel(*compiled(_equity_path)(equity, np.ascontiguousarray(ts_ns, dtype=np.int64)))


@njit(cache=True, error_model="numpy")  # x / 0 is inf or NaN, as in NumPy
def _period_returns(equity, ends):  # type: ignore[no-untyped-def]
    """The period returns ``r = E[ends[1:]] / E[ends[:-1]] - 1`` without the NaN ones (0 / 0 after ruin;
    backtesting.py drops these too), as NumPy's expressions compute them, bit for bit (sums are NumPy's,
    `trade_figures.pairwise_sum`). Returns ``(len(r), 1 + r, r.var(ddof=1), np.mean(np.minimum(r, 0) **
    2))``, the last two NaN for fewer than 2 and 1 returns."""
    m = ends.shape[0]
    r = np.empty(max(m - 1, 0), dtype=np.float64)
    k = 0
    for t in range(1, m):
        v = equity[ends[t]] / equity[ends[t - 1]] - 1.0
        if v == v:
            r[k] = v
            k += 1
    growth = np.empty(k, dtype=np.float64)
    sq = np.empty(k, dtype=np.float64)
    for t in range(k):
        growth[t] = 1.0 + r[t]
        d = r[t] if r[t] < 0.0 else 0.0
        sq[t] = d * d
    down_mean = pairwise_sum(sq, k) / k if k > 0 else np.nan
    var = np.nan
    if k > 1:
        mean = pairwise_sum(r, k) / k
        for t in range(k):
            x = r[t] - mean
            sq[t] = x * x
        var = pairwise_sum(sq, k) / (k - 1)
    return k, growth, var, down_mean


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
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 after ruin (the Python twin's NumPy scalars)
        n_r, growth, var, down_mean = compiled(_period_returns)(equity, np.ascontiguousarray(ends, dtype=np.int64))
    g = _geometric_mean_of_growth(growth)
    g = 0.0 if math.isnan(g) else g
    annual = (1.0 + g) ** per_year - 1.0
    var = float(var)
    with np.errstate(invalid="ignore"):
        vol = (
            math.sqrt((var + (1.0 + g) ** 2) ** per_year - (1.0 + g) ** (2 * per_year))
            if not math.isnan(var)
            else math.nan
        )
    sharpe = (annual - risk_free_rate) / vol if vol else math.nan
    downside = math.sqrt(float(down_mean)) * math.sqrt(per_year) if n_r else math.nan
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
    "Exposure Time"): the bars in the union of the trades' ``[entry, exit]`` intervals over ``n_bars``.
    Unlike backtesting.py, a trade still open (``exit < 0``) counts up to the last bar. Per trade in
    entry order, it adds the bars past the furthest exit of the trades before it."""
    if entry_bars.shape[0] == 0:
        return 0.0
    order = np.argsort(entry_bars, kind="stable")
    start = entry_bars[order]
    end = np.where(exit_bars < 0, n_bars - 1, exit_bars)[order]
    reach = np.concatenate(([-1], np.maximum.accumulate(end)[:-1]))
    covered = int(np.maximum(0, end - np.maximum(start, reach + 1) + 1).sum())
    return covered / n_bars


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
    path: EquityPath | None = None,
) -> Metrics:
    """All metrics for one run. Trade arrays hold every trade; ``exit_bars < 0`` marks open ones.

    - total return ``E[n-1] / E[0] - 1``.
    - buy & hold ``close[n-1] / close[w] - 1``, ``w = first_trading_bar`` (the first bar at which
      the strategy's indicators are defined, as backtesting.py).
    - peak, max drawdown and its duration (`equity_path`), exposure, risk and trade figures: see the
      functions above.
    - Calmar ``R / |max drawdown|`` (NaN without drawdown).
    - total commission: commissions of all trades, open ones included (entry leg only).
    - periods per year: the annualisation factor ``A`` of :func:`period_ends` that was used.

    ``periods``: :func:`period_ends` of ``ts_ns`` if already known (a sweep computes it once); ``path``:
    :func:`equity_path` of ``equity`` if already known (the fused SMA crossover pass computes it as it goes).
    """
    periods = periods if periods is not None else period_ends(ts_ns)
    annual, vol, sharpe, sortino, cagr = risk_metrics(equity, ts_ns, risk_free_rate, periods)
    path = path if path is not None else equity_path(equity, ts_ns)
    mdd = path.max_drawdown
    n_bars = equity.shape[0]
    # trade_metrics, exposure and the commission total in one compiled pass (`trade_figures`)
    n_closed, win, best, worst, pf, expectancy, growth, covered, commission = compiled(trade_figures)(
        np.ascontiguousarray(entry_bars, dtype=np.int64),
        np.ascontiguousarray(exit_bars, dtype=np.int64),
        np.ascontiguousarray(pnl, dtype=np.float64),
        np.ascontiguousarray(returns, dtype=np.float64),
        np.ascontiguousarray(commissions, dtype=np.float64),
        n_bars,
    )
    avg = _geometric_mean_of_growth(growth) if n_closed else math.nan
    exposure_share = covered / n_bars if covered >= 0 else exposure(n_bars, entry_bars, exit_bars)
    return Metrics(
        start_equity=float(equity[0]),
        final_equity=float(equity[-1]),
        peak_equity=path.peak,
        total_return=float(equity[-1] / equity[0] - 1.0),
        buy_and_hold_return=float(close[-1] / close[first_trading_bar] - 1.0),
        cagr=cagr,
        annual_return=annual,
        annual_volatility=vol,
        sharpe=sharpe,
        sortino=sortino,
        calmar=annual / -mdd if mdd else math.nan,
        max_drawdown=mdd,
        max_drawdown_duration_bars=path.max_drawdown_duration_bars,
        max_drawdown_duration_days=path.max_drawdown_duration_days,
        exposure=exposure_share,
        n_trades=int(n_closed),
        win_rate=float(win),
        best_trade=float(best),
        worst_trade=float(worst),
        avg_trade=avg,
        profit_factor=float(pf),
        expectancy=float(expectancy),
        total_commission=float(commission),
        periods_per_year=periods[1],
    )
