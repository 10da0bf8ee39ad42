"""The prediction tools over stdio: a real `nt-mcp serve` subprocess whose venue URLs point at a local
fake HTTP server answering in Polymarket's and Kalshi's documented shapes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from tests.cli import server_env
from tests.prediction_fakes import POLY_ID, TICKER
from tests.prediction_server import fake_venues
from tests.results import error_of


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


async def test_prediction_tools_over_stdio(tmp_path: Path) -> None:
    with fake_venues() as urls:
        env = server_env(tmp_path / "d", **urls)
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(tmp_path)
        )
        async with Client(params, read_timeout_seconds=60) as client:
            found = _ok(await client.call_tool("search_prediction_markets", {"venue": "all", "query": "fed"}))
            compared = _ok(
                await client.call_tool(
                    "compare_prediction_venues",
                    {"polymarket_id": POLY_ID, "kalshi_ticker": TICKER, "contracts": 100, "probability": "0.62"},
                )
            )
            ev = _ok(
                await client.call_tool(
                    "calculate_prediction_ev",
                    {"price": "0.4714", "probability": "0.62", "bankroll": 1000, "kelly_fraction": "0.5"},
                )
            )
            placed = _ok(
                await client.call_tool(
                    "place_prediction_order",
                    {
                        "venue": "kalshi",
                        "id": TICKER,
                        "side": "yes",
                        "count": 80,
                        "limit_price": "0.45",
                        "idempotency_key": "stdio-1",
                    },
                )
            )
            positions = _ok(await client.call_tool("get_prediction_positions", {}))
            history = _ok(await client.call_tool("get_prediction_price_history", {"venue": "kalshi", "id": TICKER}))
            missing = await client.call_tool("get_prediction_market", {"venue": "kalshi", "id": "KXNOPE-1"})
    assert {m["venue"] for m in found["markets"]} == {"polymarket", "kalshi"}
    assert compared["best_venue"] == "kalshi"
    assert {r["venue"]: r["all_in_cost"] for r in compared["venues"]} == {"polymarket": "0.569856", "kalshi": "0.4714"}
    assert ev["kelly_full"].startswith("0.2811") and ev["contracts_for_stake"] == "298"
    assert placed["order"]["status"] == "filled" and placed["order"]["fees"] == "1.39"
    assert [(p["venue"], p["qty"]) for p in positions["positions"]] == [("kalshi", "80")]
    assert history["count"] == 1 and history["points"][0]["p"] == "0.42"
    assert error_of(missing)["code"] == "NOT_FOUND"
