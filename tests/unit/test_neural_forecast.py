"""The neural forecaster: features, determinism, the stored blob, the walk-forward evaluation against its
baselines (it wins on a predictable series and says plainly that it loses on a random walk), conformal
coverage, and the neural_forecast strategy's walk-forward refits (no look-ahead). Tiny networks: fast."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nt_mcp.domain.backtest import BacktestConfig
from nt_mcp.domain.errors import DomainValueError
from nt_mcp.domain.forecast import ModelConfig, baselines, fit_model, forecast_path, walk_forward
from nt_mcp.domain.forecast.evaluation import conformal_quantile, time_series_folds, winkler
from nt_mcp.domain.forecast.features import log_returns, supervised
from nt_mcp.domain.forecast.model import FittedModel
from nt_mcp.domain.strategies import STRATEGIES, run_strategy
from nt_mcp.domain.strategies.neural_forecast import first_refit_bar
from tests.unit.conftest import make_bars

TINY = ModelConfig(lags=10, horizon=3, hidden_layers=(16,), max_iter=200, seed=3)


def _random_walk(n: int = 700, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 100 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))


def _predictable(n: int = 700, seed: int = 0) -> np.ndarray:
    """Log returns following a strong AR(1): r[t] = 0.8 r[t-1] + noise."""
    rng = np.random.default_rng(seed)
    r = np.zeros(n)
    for t in range(1, n):
        r[t] = 0.8 * r[t - 1] + rng.normal(0, 0.01)
    return 100 * np.exp(np.cumsum(r))


def test_samples_are_lagged_returns_and_the_next_returns() -> None:
    close = np.exp(np.arange(12, dtype=float) ** 2 / 100)
    r = log_returns(close)
    x, y = supervised(r, lags=3, horizon=2)
    assert x.shape == (len(r) - 3 - 2 + 1, 3) and y.shape == (x.shape[0], 2)
    np.testing.assert_array_equal(x[0], r[0:3])
    np.testing.assert_array_equal(y[0], r[3:5])
    np.testing.assert_array_equal(y[-1], r[-2:])


def test_forward_pass_equals_scikit_learn_and_fits_are_deterministic() -> None:
    from sklearn.neural_network import MLPRegressor

    x, y = supervised(log_returns(_random_walk(300)), TINY.lags, TINY.horizon)
    model = fit_model(x, y, TINY)
    again = fit_model(x, y, TINY)
    for a, b in zip(model.coefs, again.coefs, strict=True):
        np.testing.assert_array_equal(a, b)
    reference = MLPRegressor(
        hidden_layer_sizes=TINY.hidden_layers, max_iter=TINY.max_iter, random_state=TINY.seed, early_stopping=True
    )
    xs, ys = (x - model.x_mean) / model.x_scale, (y - model.y_mean) / model.y_scale
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference.fit(xs, ys)
    expected = reference.predict(xs) * model.y_scale + model.y_mean
    np.testing.assert_allclose(model.predict(x), expected, rtol=1e-10, atol=1e-14)


def test_a_one_step_horizon_fits_without_a_warning_and_predicts_one_column() -> None:
    """A horizon of 1 gives a column of targets; sklearn flattens one itself with a DataConversionWarning
    (a line on the server's stderr at every fit), so the model hands it a flat one."""
    import warnings

    from sklearn.exceptions import DataConversionWarning

    config = ModelConfig(lags=10, horizon=1, hidden_layers=(8,), max_iter=50, seed=1)
    x, y = supervised(log_returns(_random_walk(200)), config.lags, config.horizon)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataConversionWarning)
        model = fit_model(x, y, config)
    assert model.coefs[-1].shape[1] == 1
    assert model.predict(x).shape == (x.shape[0], 1)


def test_the_blob_round_trips_and_refuses_anything_else() -> None:
    x, y = supervised(log_returns(_random_walk(300)), TINY.lags, TINY.horizon)
    model = fit_model(x, y, TINY)
    loaded = FittedModel.from_blob(model.to_blob())
    assert loaded.config == TINY
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    import pickle

    for bad in (b"", b"garbage", pickle.dumps({"a": 1}), model.to_blob()[:-50]):
        with pytest.raises(DomainValueError) as caught:
            FittedModel.from_blob(bad)
        assert caught.value.argument == "model"


def test_folds_leave_a_gap_of_at_least_the_horizon() -> None:
    splits = time_series_folds(200, 4, gap=5)
    assert len(splits) == 4
    for train, test in splits:
        assert test[0] - train[-1] - 1 >= 5  # no training target reaches a test origin's future
    with pytest.raises(DomainValueError) as caught:
        time_series_folds(40, 5, gap=5)
    assert caught.value.argument == "bars"


def test_ar_baseline_forecast_equals_statsmodels() -> None:
    from statsmodels.tsa.ar_model import AutoReg

    r = log_returns(_predictable(400))
    fit = baselines.fit_ar(r)
    assert fit.order >= 1
    reference = AutoReg(r, lags=fit.order, trend="c").fit()
    ours = baselines.ar_forecast(fit, r[None, -10:], 4)[0]
    np.testing.assert_allclose(ours, reference.forecast(4), rtol=1e-10)


def test_walk_forward_beats_baselines_on_a_predictable_series() -> None:
    evaluation, residuals = walk_forward(_predictable(), TINY, folds=3, confidence=0.8)
    assert set(evaluation.scores) == {"model", "naive", "drift", "arima"}
    naive = next(s for s in evaluation.skill if s.baseline == "naive")
    assert naive.overall > 0.05 and evaluation.beats_naive
    assert "beats the naive" in evaluation.verdict
    assert evaluation.scores["naive"].steps[0].directional_accuracy is None
    assert evaluation.scores["model"].steps[0].directional_accuracy > 0.6  # type: ignore[operator]
    assert residuals.shape[1] == TINY.horizon and len(evaluation.folds) == 3


def test_walk_forward_says_plainly_when_the_model_loses_to_naive() -> None:
    evaluation, _ = walk_forward(_random_walk(), TINY, folds=3, confidence=0.9)
    naive = next(s for s in evaluation.skill if s.baseline == "naive")
    assert naive.overall < 0 and not evaluation.beats_naive
    assert "does NOT beat the naive" in evaluation.verdict


def test_conformal_intervals_cover_about_their_level() -> None:
    evaluation, residuals = walk_forward(_random_walk(1200, seed=5), TINY, folds=4, confidence=0.8)
    coverage = evaluation.intervals.overall_coverage
    assert coverage is not None and abs(coverage - 0.8) < 0.06
    assert evaluation.intervals.half_widths[0] == conformal_quantile(residuals[:, 0], 0.8)
    assert evaluation.intervals.half_widths[-1] > evaluation.intervals.half_widths[0]  # wider further out
    assert conformal_quantile(np.array([0.1, 0.2]), 0.9) == math.inf
    w = winkler(np.array([0.0]), np.array([1.0]), np.array([1.5]), 0.9)
    assert w[0] == pytest.approx(1.0 + 20 * 0.5)


def test_forecast_path_prices_and_intervals() -> None:
    close = _random_walk(300)
    x, y = supervised(log_returns(close), TINY.lags, TINY.horizon)
    model = fit_model(x, y, TINY)
    path = forecast_path(model, close, [0.01, 0.02, 0.03])
    steps = model.predict(log_returns(close)[-10:][None, :])[0]
    assert path[2].price == pytest.approx(close[-1] * math.exp(steps.sum()))
    assert path[0].lower == pytest.approx(close[-1] * math.exp(steps[0] - 0.01))
    assert [p.step for p in path] == [1, 2, 3]


def test_config_bounds_name_the_argument() -> None:
    for kwargs, argument in [
        ({"lags": 5, "horizon": 5}, "horizon"),
        ({"lags": 1}, "lookback"),
        ({"hidden_layers": (1000,)}, "hidden_layers"),
        ({"max_iter": 0}, "max_iter"),
    ]:
        with pytest.raises(DomainValueError) as caught:
            ModelConfig(**kwargs)  # type: ignore[arg-type]
        assert caught.value.argument == argument


SMALL = {"lookback": 8, "horizon": 2, "train_window": 80, "refit_every": 25, "hidden_units": 16, "max_iter": 60}


def test_neural_forecast_strategy_never_looks_ahead() -> None:
    close = _predictable(400, seed=2)
    bars = make_bars(close)
    spec = STRATEGIES["neural_forecast"]
    signals = spec.signals(bars, SMALL)
    b0 = first_refit_bar(spec.validate(SMALL))
    assert np.isnan(signals[:b0]).all() and not np.isnan(signals[b0:]).any()
    rng = np.random.default_rng(9)
    later_changed = False
    for cut in (b0, b0 + 24, b0 + 25, b0 + 137, 398):
        future = close.copy()
        future[cut + 1 :] *= np.exp(np.cumsum(rng.normal(0, 0.05, len(close) - cut - 1)))
        changed = spec.signals(make_bars(future), SMALL)
        np.testing.assert_array_equal(changed[: cut + 1], signals[: cut + 1])  # the past is untouched
        later_changed |= not np.array_equal(changed[cut + 1 :], signals[cut + 1 :])
    assert later_changed  # the perturbation does reach the signals after the cut


def test_neural_forecast_strategy_trades_a_predictable_series_and_bounds_its_work() -> None:
    bars = make_bars(_predictable(400, seed=2))
    result = run_strategy(bars, "neural_forecast", SMALL | {"allow_short": True}, BacktestConfig())
    assert len(result.trades) > 5
    spec = STRATEGIES["neural_forecast"]
    with pytest.raises(DomainValueError) as caught:
        spec.validate({"lookback": 5, "horizon": 5})
    assert caught.value.argument == "horizon"
    with pytest.raises(DomainValueError) as caught:
        spec.run(make_bars(_random_walk(5000)), SMALL | {"refit_every": 5})
    assert caught.value.argument == "refit_every"
