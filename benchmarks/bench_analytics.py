"""How long the heavy analytics take, against the tool deadline (NT_TOOL_TIMEOUT_S).

1. Training the default forecaster (MLP 50-50-25, 60 lags, horizon 5) on 10 years of daily bars (2,520)
   with 5 walk-forward folds, baselines and conformal intervals included, then the final fit: what
   `train_forecaster` computes.
2. A max-Sharpe optimisation (skfolio, Clarabel) over 50 symbols x 5 years of daily bars (1,260), alone
   and out of sample (fit on 70 %, measure on 30 %): what `optimize_portfolio` computes.

The bars are the seeded synthetic ones (not real prices). The first use of scikit-learn/statsmodels and
of skfolio imports them (timed separately: a fresh server pays it once). Run:

    python benchmarks/bench_analytics.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import datetime

import numpy as np

from nt_mcp.adapters.data.synthetic import generate_bars
from nt_mcp.config import Settings


def timed(fn, repeat: int) -> tuple[float, list[float], object]:  # type: ignore[no-untyped-def]
    runs, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs), runs, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    deadline = Settings(_env_file=None).tool_timeout_s  # type: ignore[call-arg]
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; tool deadline NT_TOOL_TIMEOUT_S = {deadline:g} s"
    )

    end = datetime(2026, 6, 30)
    started = time.perf_counter()
    import sklearn.neural_network  # noqa: F401
    import statsmodels.tsa.ar_model  # noqa: F401

    print(f"import scikit-learn + statsmodels: {time.perf_counter() - started:.2f} s (once per process)")
    from nt_mcp.domain.forecast import ModelConfig, final_model, walk_forward

    bars = generate_bars("SPY", datetime(2015, 1, 1), end, "1Day")
    close = np.asarray(bars.close[-2520:])

    def train() -> object:
        evaluation, _ = walk_forward(close, ModelConfig(), folds=5, confidence=0.9)
        final_model(close, ModelConfig())
        return evaluation

    median, runs, evaluation = timed(train, args.repeat)
    naive = next(s for s in evaluation.skill if s.baseline == "naive")  # type: ignore[attr-defined]
    print(
        f"train default forecaster, {len(close)} daily bars, 5 folds + final fit: median {median:.2f} s "
        f"(runs {', '.join(f'{r:.2f}' for r in runs)}); {median / deadline:.1%} of the deadline; "
        f"skill vs naive {naive.overall:+.4f}"
    )

    full = ModelConfig(early_stopping=False)  # every fit runs all 200 epochs: the worst case of the defaults

    def train_full() -> object:
        walk_forward(close, full, folds=5, confidence=0.9)
        return final_model(close, full)

    median, runs, _ = timed(train_full, 1)
    print(f"same, early stopping off (all 200 epochs per fit): {median:.2f} s; {median / deadline:.1%} of the deadline")

    started = time.perf_counter()
    import skfolio.optimization  # noqa: F401

    print(f"import skfolio (cvxpy, clarabel, pandas): {time.perf_counter() - started:.2f} s (once per process)")
    from nt_mcp.domain import portfolio, risk

    symbols = [f"S{i:02d}" for i in range(50)]
    started = time.perf_counter()
    closes = np.column_stack([generate_bars(s, datetime(2021, 1, 1), end, "1Day").close[-1261:] for s in symbols])
    print(f"generate 50 x {closes.shape[0]} synthetic daily closes: {time.perf_counter() - started:.2f} s")
    returns = risk.simple_returns(closes)
    median, runs, _ = timed(lambda: portfolio.allocate(returns, symbols, "max_sharpe"), args.repeat)
    print(
        f"max-Sharpe, 50 symbols x {returns.shape[0]} returns: median {median:.3f} s "
        f"(runs {', '.join(f'{r:.3f}' for r in runs)}); {median / deadline:.2%} of the deadline"
    )
    median, runs, report = timed(lambda: portfolio.out_of_sample(returns, symbols, "max_sharpe", 0.7), args.repeat)
    test = report.test  # type: ignore[attr-defined]
    equal = report.equal_weight_test  # type: ignore[attr-defined]
    print(
        f"max-Sharpe out of sample (fit 70 %, test 30 %): median {median:.3f} s; test Sharpe "
        f"{test.sharpe:.2f} vs equal weight {equal.sharpe:.2f} (synthetic, independent assets)"
    )


if __name__ == "__main__":
    main()
