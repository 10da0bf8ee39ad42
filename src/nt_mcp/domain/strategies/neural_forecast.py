"""Neural forecast: trade the sign of the network's predicted h-bar return, refitted walk-forward.

The forecaster of `nt_mcp.domain.forecast` (an MLP on the latest ``lookback`` log returns, hidden layers
``(hidden_units, hidden_units, hidden_units // 2)``, seeded) predicts the next ``horizon`` log returns;
their sum is the predicted h-bar log return ``c^``. At bar t's close: ``c^ > threshold`` -> long;
``c^ < -threshold`` -> short if ``allow_short`` else flat; otherwise flat.

No look-ahead: the network is refitted every ``refit_every`` bars. A refit at bar b trains on the
``train_window`` latest samples whose targets are all known at b's close (origins i with
``i + horizon <= b - 1``, returns indexed as in `nt_mcp.domain.forecast.features`), and that model
alone decides bars ``b .. b + refit_every - 1``, each from the returns up to that bar's close. So no
bar's signal depends on a later price (a test perturbs the future and checks the past is unchanged).
The first refit is at ``b0 = train_window + horizon + lookback - 1``: bars before it are warm-up.

Cost is bounded: at most `MAX_REFITS` refits, and refits x train_window x max_iter x network weights at
most `WORK_BUDGET` (about 30 s of fitting on a 2-CPU machine in the worst case; early stopping usually
ends each fit far sooner). A larger run is refused naming ``refit_every``.
"""

from __future__ import annotations

import math

import numpy as np

from nt_mcp.domain.bars import Bars
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.forecast.features import lag_matrix, log_returns
from nt_mcp.domain.forecast.model import ModelConfig, fit_model
from nt_mcp.domain.strategies.spec import Param, Params, StrategySignals, StrategySpec

MAX_REFITS = 100
PREDICT_CHUNK = 10_000
MAX_GRID = 8  # optimize_strategy grids: every combination refits networks
WORK_BUDGET = 7.0e10


def _check(p: Params) -> None:
    if p["horizon"] >= p["lookback"]:
        raise DomainValueError("horizon", f"must be shorter than lookback ({p['lookback']}), got {p['horizon']}")


def first_refit_bar(p: Params) -> int:
    return int(p["train_window"] + p["horizon"] + p["lookback"] - 1)


def _config(p: Params) -> ModelConfig:
    units = int(p["hidden_units"])
    return ModelConfig(
        lags=int(p["lookback"]),
        horizon=int(p["horizon"]),
        hidden_layers=(units, units, max(1, units // 2)),
        max_iter=int(p["max_iter"]),
        seed=int(p["seed"]),
    )


def _compute(bars: Bars, p: Params) -> StrategySignals:
    n = len(bars)
    lags, horizon, window, every = p["lookback"], p["horizon"], p["train_window"], p["refit_every"]
    b0 = first_refit_bar(p)
    out = np.full(n, np.nan)
    if n <= b0:
        return StrategySignals(out, max(0, n - 1))
    refits = math.ceil((n - b0) / every)
    config = _config(p)
    if refits > MAX_REFITS or refits * config.fit_work(window) > WORK_BUDGET:
        raise DomainValueError(
            "refit_every",
            f"{refits} refits of {window} samples x {p['max_iter']} epochs x {config.weights_count} weights over "
            f"{n} bars is more work than allowed (at most {MAX_REFITS} refits and {WORK_BUDGET:.0e} in all): raise "
            "refit_every, or lower train_window, max_iter, hidden_units or lookback, or use fewer bars",
        )
    r = log_returns(bars.close)
    features = lag_matrix(r, lags)  # row i - (lags - 1) holds origin i: returns r[i-lags+1 .. i]
    targets = np.lib.stride_tricks.sliding_window_view(r[lags:], horizon)  # row i - (lags - 1): r[i+1 .. i+h]
    for b in range(b0, n, every):
        last_origin = b - 1 - horizon  # its targets end at r[b-1], known at bar b's close
        rows = slice(last_origin - window + 1 - (lags - 1), last_origin + 1 - (lags - 1))
        model = fit_model(features[rows], targets[rows], config)
        for start in range(b, min(b + every, n), PREDICT_CHUNK):  # bounded memory on long blocks
            block = np.arange(start, min(start + PREDICT_CHUNK, b + every, n))
            predicted = model.predict(features[block - 1 - (lags - 1)]).sum(axis=1)  # origin t-1 decides bar t
            signal = np.zeros(block.shape[0])
            signal[predicted > p["threshold"]] = 1.0
            signal[predicted < -p["threshold"]] = -1.0 if p["allow_short"] else 0.0
            out[block] = signal
    return StrategySignals(out, b0)


SPEC = StrategySpec(
    name="neural_forecast",
    description=(
        "A neural network (MLP, hidden layers hidden_units-hidden_units-hidden_units/2, seeded) on the last "
        "`lookback` log returns predicts the next `horizon` log returns; at bar i's close go long when their "
        "sum > threshold, short (allow_short) or flat when < -threshold, else flat. Refitted every "
        "`refit_every` bars on the `train_window` latest samples whose outcomes were known at that bar "
        "(walk-forward: no bar is predicted by a model that saw it); filled at bar i+1's open. Warm-up: "
        "train_window + horizon + lookback - 1 bars. Slow (each refit trains a network): optimize_strategy grids "
        "of at most 8 combinations."
    ),
    params=(
        Param("lookback", int, 60, "lagged log returns the network reads", 2, 250),
        Param("horizon", int, 5, "bars ahead the summed prediction covers; below lookback", 1, 60),
        Param("threshold", float, 0.0, "predicted h-bar log return (0.01 ~ 1 %) needed to take a position", 0.0, 1.0),
        Param("train_window", int, 500, "training samples per refit (the latest known ones)", 50, 5000),
        Param("refit_every", int, 60, "bars between refits", 5, 100_000),
        Param("hidden_units", int, 50, "units of the first two hidden layers (the third has half)", 2, 128),
        Param("max_iter", int, 200, "at most this many training epochs per refit (early stopping)", 10, 1000),
        Param("seed", int, 0, "random seed of the network's initial weights", 0, 2**31 - 1),
        Param("allow_short", bool, False, "go short when the prediction is below -threshold"),
    ),
    compute=_compute,
    check=_check,
    max_combinations=MAX_GRID,
)
