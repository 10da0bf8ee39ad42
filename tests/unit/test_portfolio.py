"""The portfolio optimiser: each objective's defining property holds on known returns, bounds are
kept, the out-of-sample report holds weights fitted on the training window, bad input names its argument."""

from __future__ import annotations

import numpy as np
import pytest

from nt_mcp.domain import portfolio
from nt_mcp.domain.errors import DomainValueError

SYMBOLS = ["A", "B", "C", "D"]


def _returns(n: int = 600, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vols = np.array([0.005, 0.01, 0.02, 0.015])
    means = np.array([0.0002, 0.0006, 0.0012, 0.0001])
    return rng.normal(means, vols, size=(n, 4))


def test_min_variance_beats_every_other_allocation_on_variance() -> None:
    r = _returns()
    result = portfolio.allocate(r, SYMBOLS, "min_variance")
    w = np.array([result.weights[s] for s in SYMBOLS])
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    best = np.var(r @ w, ddof=1)
    rng = np.random.default_rng(0)
    for _ in range(200):
        other = rng.dirichlet(np.ones(4))
        assert best <= np.var(r @ other, ddof=1) * (1 + 1e-6)
    assert result.covariance_estimator.startswith("sample covariance") and result.mu_estimator == "not used"


def test_max_sharpe_beats_random_portfolios_and_names_its_estimators() -> None:
    r = _returns()
    result = portfolio.allocate(r, SYMBOLS, "max_sharpe", covariance="ledoit_wolf", mu="sample")
    assert "Ledoit-Wolf" in result.covariance_estimator and "sample mean" in result.mu_estimator
    plain = portfolio.allocate(r, SYMBOLS, "max_sharpe")
    w = np.array([plain.weights[s] for s in SYMBOLS])
    sharpe = portfolio.performance(r, w).sharpe
    rng = np.random.default_rng(0)
    for _ in range(200):
        assert sharpe is not None
        other = portfolio.performance(r, rng.dirichlet(np.ones(4))).sharpe
        assert other is not None and sharpe >= other - 1e-3


def test_bounds_are_kept_and_risk_parity_equalises_contributions() -> None:
    r = _returns()
    bounded = portfolio.allocate(
        r, SYMBOLS, "max_sharpe", portfolio.Constraints(max_weight=0.4, bounds={"A": (0.1, 0.2)})
    )
    assert all(w <= 0.4 + 1e-6 for w in bounded.weights.values())
    assert 0.1 - 1e-6 <= bounded.weights["A"] <= 0.2 + 1e-6
    parity = portfolio.allocate(r, SYMBOLS, "risk_parity")
    w = np.array([parity.weights[s] for s in SYMBOLS])
    cov = np.cov(r, rowvar=False)
    contributions = w * (cov @ w)
    assert contributions == pytest.approx(np.full(4, contributions.mean()), rel=1e-3)
    hrp = portfolio.allocate(r, SYMBOLS, "hrp")
    assert sum(hrp.weights.values()) == pytest.approx(1.0)
    assert hrp.weights["A"] > hrp.weights["C"]  # the least volatile asset gets the most weight


def test_out_of_sample_holds_the_training_weights_and_compares_equal_weight() -> None:
    r = _returns(800)
    report = portfolio.out_of_sample(r, SYMBOLS, "min_variance", 0.75)
    assert (report.train_bars, report.test_bars) == (600, 200)
    direct = portfolio.allocate(r[:600], SYMBOLS, "min_variance")
    assert report.allocation.weights == pytest.approx(direct.weights)
    w = np.array([direct.weights[s] for s in SYMBOLS])
    expected = portfolio.performance(r[600:], w)
    assert report.test == expected
    assert report.equal_weight_test == portfolio.performance(r[600:], np.full(4, 0.25))
    assert report.test.annual_return == pytest.approx((r[600:] @ w).mean() * 252)


def test_efficient_frontier_rises_in_return_with_volatility() -> None:
    points = portfolio.efficient_frontier(_returns(), SYMBOLS, 8)
    assert len(points) == 8
    vols = [p.annual_volatility for p in points]
    rets = [p.annual_return for p in points]
    assert vols == sorted(vols) and rets[-1] > rets[0]
    assert all(sum(p.weights.values()) == pytest.approx(1.0) for p in points)


def test_infeasible_and_bad_inputs_name_the_argument() -> None:
    r = _returns()
    with pytest.raises(portfolio.OptimizationInfeasible) as infeasible:
        portfolio.allocate(r, SYMBOLS, "target_return", target_return=5.0)
    assert infeasible.value.argument == "target_return"
    losing = -np.abs(r)
    with pytest.raises(portfolio.OptimizationInfeasible) as no_sharpe:
        portfolio.allocate(losing, SYMBOLS, "max_sharpe")
    assert no_sharpe.value.argument == "objective"
    for constraints, argument in [
        (portfolio.Constraints(max_weight=0.2), "max_weight"),
        (portfolio.Constraints(min_weight=0.3), "min_weight"),
        (portfolio.Constraints(bounds={"Z": (0, 1)}), "bounds"),
    ]:
        with pytest.raises(DomainValueError) as caught:
            portfolio.allocate(r, SYMBOLS, "min_variance", constraints)
        assert caught.value.argument == argument
    with pytest.raises(DomainValueError) as short:
        portfolio.allocate(r[:10], SYMBOLS, "min_variance")
    assert short.value.argument == "lookback"
