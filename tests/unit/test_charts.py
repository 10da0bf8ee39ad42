"""The equity chart as a person sees it: buy & hold starts where it is defined, the title says the source once."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from nt_mcp.tools.backtesting import chart_title
from nt_mcp.tools.charts import HEIGHT_PX, equity_curve_png

GREY = (140, 140, 140)
PLOT_LEFT, PLOT_RIGHT, PLOT_TOP, PLOT_BOTTOM = 78, 800 - 14, 34, HEIGHT_PX - 42
BELOW_LEGEND = PLOT_TOP + 40


def _pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def test_buy_and_hold_is_drawn_from_its_first_defined_bar() -> None:
    n, warmup = 400, 100
    ts = (np.arange(n, dtype=np.int64) * 86_400 + 1_700_000_000) * 10**9
    equity = np.full(n, 10_000.0)
    hold = np.full(n, np.nan)
    hold[warmup:] = np.linspace(12_000.0, 14_000.0, n - warmup)  # well above the equity line
    pixels = _pixels(equity_curve_png(ts, equity, hold, "t"))
    grey = np.all(pixels == GREY, axis=2)
    grey[:BELOW_LEGEND, : PLOT_LEFT + 40] = False  # the legend's sample line
    grey[PLOT_BOTTOM + 1 :] = False  # axis labels
    columns = np.flatnonzero(grey[:, PLOT_LEFT:PLOT_RIGHT].any(axis=0)) + PLOT_LEFT
    first_bar_x = PLOT_LEFT + warmup / (n - 1) * (PLOT_RIGHT - PLOT_LEFT)
    assert abs(columns.min() - first_bar_x) <= 2  # starts at the first defined bar, nothing over the warm-up
    assert columns.max() >= PLOT_RIGHT - 2  # and runs to the last bar
    assert not grey[PLOT_BOTTOM - 3 : PLOT_BOTTOM + 1, PLOT_LEFT:PLOT_RIGHT].any()  # no line along the bottom axis


def test_a_hold_curve_with_nothing_defined_draws_nothing() -> None:
    ts = (np.arange(50, dtype=np.int64) * 86_400 + 1_700_000_000) * 10**9
    pixels = _pixels(equity_curve_png(ts, np.full(50, 100.0), np.full(50, np.nan), "t"))
    assert not np.all(pixels[BELOW_LEGEND:PLOT_BOTTOM, PLOT_LEFT:PLOT_RIGHT] == GREY, axis=2).any()


def test_the_title_names_the_source_once() -> None:
    assert chart_title("sma_crossover", "SPY", "synthetic") == "sma_crossover on SPY (SYNTHETIC, not real prices)"
    assert chart_title("momentum", "GOOG", "files") == "momentum on GOOG (files)"
    assert chart_title("momentum", "AAPL", "alpaca") == "momentum on AAPL (alpaca)"
