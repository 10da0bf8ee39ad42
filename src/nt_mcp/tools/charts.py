"""Small PNG charts for tool results (matplotlib, Agg canvas, no pyplot global state: safe in a worker thread).

matplotlib is imported on the first chart (~0.6 s of CPU), not at server start. Drawing in a spawned
worker process to hide that cost was tried and measured: spawning Python and importing numpy and
matplotlib there takes longer (~0.9 s) than the work it would overlap with, so charts are drawn in a
thread of this process. Layout margins are fixed (no tight_layout: it draws the figure twice).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

WIDTH_PX, HEIGHT_PX, DPI = 800, 350, 100
MAX_POINTS = 2000
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Series:
    """A curve reduced to at most MAX_POINTS points: each bucket's last value and its min/max envelope."""

    x: npt.NDArray[np.datetime64]
    last: FloatArray
    low: FloatArray | None
    high: FloatArray | None


def bucketed(ts_ns: npt.NDArray[np.int64], values: FloatArray) -> Series:
    n = values.shape[0]
    if n <= MAX_POINTS:
        return Series(ts_ns.view("datetime64[ns]"), values, None, None)
    edges = np.linspace(0, n, MAX_POINTS + 1).astype(np.int64)
    starts, lasts = edges[:-1], edges[1:] - 1
    finite = values[np.isfinite(values)]
    clean = np.nan_to_num(values, nan=float(finite.min()) if finite.size else 0.0)
    return Series(
        ts_ns[lasts].view("datetime64[ns]"),
        values[lasts],
        np.minimum.reduceat(clean, starts),
        np.maximum.reduceat(clean, starts),
    )


def render_equity_curve(equity: Series, buy_and_hold: Series | None, title: str) -> bytes:
    """An 800x350 PNG: strategy equity (solid, shaded envelope when bucketed) and buy & hold (dashed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.1, right=0.98, top=0.9, bottom=0.17)
    ax = fig.add_subplot(1, 1, 1)
    if equity.low is not None and equity.high is not None:
        ax.fill_between(equity.x, equity.low, equity.high, color="tab:blue", alpha=0.25, linewidth=0)
    ax.plot(equity.x, equity.last, color="tab:blue", linewidth=1.2, label="strategy equity")
    if buy_and_hold is not None:
        ax.plot(buy_and_hold.x, buy_and_hold.last, color="grey", linewidth=1.0, linestyle="--", label="buy & hold")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("equity")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    for label in ax.get_xticklabels():
        label.set_rotation(20)
        label.set_horizontalalignment("right")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def equity_curve_png(
    ts_ns: npt.NDArray[np.int64], equity: FloatArray, buy_and_hold: FloatArray | None, title: str
) -> bytes:
    """The chart drawn in this process (see `ChartRenderer` for the worker-process path)."""
    hold = bucketed(ts_ns, buy_and_hold) if buy_and_hold is not None else None
    return render_equity_curve(bucketed(ts_ns, equity), hold, title)
