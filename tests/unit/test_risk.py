"""The risk manager's numbers against reference implementations: skfolio's measures (VaR, CVaR) and
empyrical-reloaded (volatility, beta, max drawdown), plus the closed forms of the parametric methods."""

from __future__ import annotations

import math

import empyrical
import numpy as np
import pytest
from scipy import integrate, stats
from skfolio import measures

from nt_mcp.domain import risk
from nt_mcp.domain.errors import DomainValueError


def _returns(n: int = 750, assets: int = 3, seed: int = 7) -> np.ndarray:
    """Fat-tailed, correlated daily returns (Student t with 4 degrees of freedom)."""
    rng = np.random.default_rng(seed)
    mix = np.array([[1.0, 0.5, 0.2], [0.0, 0.8, 0.3], [0.0, 0.0, 0.9]])[:assets, :assets]
    return (rng.standard_t(4, size=(n, assets)) @ mix) * 0.01 + 0.0003


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.975, 0.99])
@pytest.mark.parametrize("n", [20, 99, 100, 750])
def test_historical_var_and_cvar_equal_skfolio(confidence: float, n: int) -> None:
    r = _returns(n)[:, 0]
    var, cvar = risk.empirical_var_cvar(r, confidence)
    assert var == pytest.approx(measures.value_at_risk(r, beta=confidence), abs=1e-15)
    assert cvar == pytest.approx(measures.cvar(r, beta=confidence), rel=1e-12)
    assert cvar >= var > 0  # losses are positive and CVaR is beyond VaR


def test_portfolio_tail_risk_is_on_the_weighted_returns_and_scales_to_currency() -> None:
    r = _returns()
    exposures = np.array([50_000.0, 30_000.0, 20_000.0])
    tail = risk.tail_risk(r, exposures, "historical", 0.95, 1)
    r_p = r @ np.array([0.5, 0.3, 0.2])
    assert tail.var == pytest.approx(measures.value_at_risk(r_p, beta=0.95), abs=1e-15)
    assert tail.cvar == pytest.approx(measures.cvar(r_p, beta=0.95), rel=1e-12)
    assert tail.observations == 750
    # a 10-day horizon uses every overlapping 10-day compounded return
    ten = risk.tail_risk(r, exposures, "historical", 0.95, 10)
    windows = np.array([np.prod(1 + r_p[i : i + 10]) - 1 for i in range(len(r_p) - 9)])
    assert ten.observations == len(windows)
    assert ten.var == pytest.approx(measures.value_at_risk(windows, beta=0.95), rel=1e-12)
    assert ten.var > tail.var


def test_volatility_beta_drawdown_equal_empyrical() -> None:
    r = _returns()
    p, b = r[:, 0], r[:, 1]
    assert risk.annual_volatility(p) == pytest.approx(empyrical.annual_volatility(p), rel=1e-12)
    assert risk.beta(p, b) == pytest.approx(empyrical.beta(p, b), rel=1e-10)
    assert risk.max_drawdown(p) == pytest.approx(empyrical.max_drawdown(p), rel=1e-12)
    assert risk.max_drawdown(p) < 0
    assert risk.correlation(p, b) == pytest.approx(stats.pearsonr(p, b)[0], rel=1e-12)
    matrix = risk.correlation_matrix(r)
    assert matrix.shape == (3, 3) and np.allclose(np.diag(matrix), 1.0)
    assert matrix[0, 1] == pytest.approx(risk.correlation(p, b), rel=1e-12)


def test_normal_var_cvar_closed_form() -> None:
    mu, sigma = 0.0005, 0.012
    var, cvar = risk.normal_var_cvar(mu, sigma, 0.99, 10)
    dist = stats.norm(loc=10 * mu, scale=sigma * math.sqrt(10))
    assert var == pytest.approx(-dist.ppf(0.01), rel=1e-12)
    tail_mean = dist.expect(lambda x: x, ub=dist.ppf(0.01)) / 0.01  # E[X | X < q]
    assert cvar == pytest.approx(-tail_mean, rel=1e-7)


def test_cornish_fisher_reduces_to_normal_and_integrates_its_quantile() -> None:
    mu, sigma = 0.0004, 0.01
    assert risk.cornish_fisher_var_cvar(mu, sigma, 0.0, 0.0, 0.95, 1) == pytest.approx(
        risk.normal_var_cvar(mu, sigma, 0.95, 1), rel=1e-12
    )
    s, k, c = -0.6, 3.0, 0.975
    var, cvar = risk.cornish_fisher_var_cvar(mu, sigma, s, k, c, 1)

    def quantile(p: float) -> float:
        z = stats.norm.ppf(p)
        z_cf = z + (z**2 - 1) * s / 6 + (z**3 - 3 * z) * k / 24 - (2 * z**3 - 5 * z) * s**2 / 36
        return mu + sigma * z_cf

    assert var == pytest.approx(-quantile(1 - c), rel=1e-12)
    numeric = integrate.quad(quantile, 0, 1 - c, limit=200)[0] / (1 - c)
    assert cvar == pytest.approx(-numeric, rel=1e-6)
    # negative skew and fat tails make the loss larger than the normal one
    assert var > risk.normal_var_cvar(mu, sigma, c, 1)[0]


def test_monte_carlo_is_seeded_and_close_to_normal_for_gaussian_data() -> None:
    rng = np.random.default_rng(3)
    r = rng.normal(0.0002, 0.01, size=(2000, 2))
    exposures = np.array([1.0, 1.0])
    first = risk.tail_risk(r, exposures, "monte_carlo", 0.95, 5, n_sims=20_000, seed=1)
    again = risk.tail_risk(r, exposures, "monte_carlo", 0.95, 5, n_sims=20_000, seed=1)
    normal = risk.tail_risk(r, exposures, "normal", 0.95, 5)
    assert first == again
    assert first.var == pytest.approx(normal.var, rel=0.05)
    assert first.cvar == pytest.approx(normal.cvar, rel=0.05)


def test_stress_scenarios_apply_named_and_default_shocks() -> None:
    results = risk.stress(
        {"AAPL": 60_000.0, "MSFT": 40_000.0},
        [("tech -10%", {"*": -0.10}), ("AAPL crash", {"AAPL": -0.30, "MSFT": 0.02})],
    )
    assert results[0].pnl == pytest.approx(-10_000.0) and results[0].pnl_pct == pytest.approx(-0.10)
    assert results[1].contributions == {"AAPL": pytest.approx(-18_000.0), "MSFT": pytest.approx(800.0)}
    with pytest.raises(DomainValueError) as caught:
        risk.stress({"AAPL": 1.0}, [("bad", {"AAPL": -1.5})])
    assert caught.value.argument == "scenarios"


def test_bad_inputs_name_the_argument() -> None:
    r = _returns(50)
    for confidence in (0.0, 1.0, 1.5, float("nan")):
        with pytest.raises(DomainValueError) as caught:
            risk.tail_risk(r, np.ones(3), "normal", confidence, 1)
        assert caught.value.argument == "confidence"
    with pytest.raises(DomainValueError) as caught:
        risk.tail_risk(r[:10], np.ones(3), "historical", 0.95, 1)
    assert caught.value.argument == "lookback"
    with pytest.raises(DomainValueError) as caught:
        risk.tail_risk(r, np.zeros(3), "historical", 0.95, 1)
    assert caught.value.argument == "portfolio"
