"""Small PNG charts for tool results (matplotlib, Agg canvas, no pyplot global state: safe in a worker thread)."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt

WIDTH_PX, HEIGHT_PX, DPI = 800, 350, 100
MAX_POINTS = 2000


def _bucketed(
    ts_ns: npt.NDArray[np.int64], values: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.datetime64], npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """At most MAX_POINTS points: each bucket's last value, and its min and max (the envelope)."""
    n = values.shape[0]
    if n <= MAX_POINTS:
        return ts_ns.view("datetime64[ns]"), values, values, values
    edges = np.linspace(0, n, MAX_POINTS + 1).astype(np.int64)
    starts, lasts = edges[:-1], edges[1:] - 1
    clean = np.nan_to_num(values, nan=np.nanmin(values))
    lo = np.minimum.reduceat(clean, starts)
    hi = np.maximum.reduceat(clean, starts)
    return ts_ns[lasts].view("datetime64[ns]"), values[lasts], lo, hi


def equity_curve_png(
    ts_ns: npt.NDArray[np.int64],
    equity: npt.NDArray[np.float64],
    buy_and_hold: npt.NDArray[np.float64] | None,
    title: str,
) -> bytes:
    """An 800x350 PNG of the equity curve (and buy & hold of the same cash, dashed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x, last, lo, hi = _bucketed(ts_ns, equity)
    if lo is not last:
        ax.fill_between(x, lo, hi, color="tab:blue", alpha=0.25, linewidth=0)
    ax.plot(x, last, color="tab:blue", linewidth=1.2, label="strategy equity")
    if buy_and_hold is not None:
        bx, blast, _, _ = _bucketed(ts_ns, buy_and_hold)
        ax.plot(bx, blast, color="grey", linewidth=1.0, linestyle="--", label="buy & hold")
    ax.set_title(title, fontsize=10)
    ax.set_ylabel("equity")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()
