"""The README's walk-forward table: `evaluate_forecaster` with its defaults on GOOG (backtesting.py's daily
bars 2004-2013, written to a temporary NT_DATA_DIR), called over stdio on a fresh `nt-mcp serve`, printed
as Markdown. Needs the `test` extra (backtesting.py ships the data).

    python benchmarks/goog_walk_forward.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.test_backtesting_tools import write_goog_csv  # noqa: E402


def fmt(value: Any, digits: int = 5) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        write_goog_csv(Path(tmp) / "market")
        env = {k: v for k, v in os.environ.items() if not k.startswith("NT_")}
        env |= {"NT_DATA_HOME": str(Path(tmp) / "data"), "NT_DATA_DIR": str(Path(tmp) / "market")}
        params = StdioServerParameters(command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env, cwd=tmp)
        async with Client(params, read_timeout_seconds=300) as client:
            result = await client.call_tool("evaluate_forecaster", {"symbol": "GOOG"})
    if result.is_error:
        raise SystemExit(result.content[0].text)  # type: ignore[union-attr]
    body = result.structured_content
    assert body is not None
    data, evaluation, p = body["data"], body["evaluation"], body["params"]
    print(
        f"GOOG, {data['source']} source, {data['bars']} daily bars {data['first_timestamp'][:10]} .. "
        f"{data['last_timestamp'][:10]}; lookback {p['lookback']}, horizon {p['horizon']}, hidden "
        f"{p['hidden_layers']}, {p['folds']} folds, seed {p['seed']}; {body['elapsed_s']:.1f} s in the tool\n"
    )
    print(
        "| step | RMSE model | RMSE naive | RMSE drift | RMSE ARIMA | MASE model | direction model | skill vs naive |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in evaluation["table"]:
        print(
            f"| {row['step']} | {fmt(row['rmse_model'])} | {fmt(row['rmse_naive'])} | {fmt(row['rmse_drift'])} | "
            f"{fmt(row['rmse_arima'])} | {fmt(row['mase_model'], 3)} | {fmt(row['directional_accuracy_model'], 3)} | "
            f"{row['skill_vs_naive']:+.3f} |"
        )
    skill = {s["baseline"]: s["overall"] for s in evaluation["skill"]}
    intervals = evaluation["intervals"]
    print(
        f"\nskill (1 - RMSE model / RMSE baseline, mean over steps): naive {skill['naive']:+.3f}, "
        f"drift {skill['drift']:+.3f}, ARIMA {skill['arima']:+.3f}; ARIMA orders {evaluation['arima_orders']}"
    )
    print(f"verdict: {evaluation['verdict']}")
    coverage = ", ".join(fmt(c, 3) for c in intervals["coverage"])
    winkler = ", ".join(fmt(w, 4) for w in intervals["winkler"])
    print(
        f"90 % conformal intervals: out-of-sample coverage per step {coverage} "
        f"({intervals['evaluated']} outcomes each); Winkler {winkler}"
    )


if __name__ == "__main__":
    asyncio.run(main())
