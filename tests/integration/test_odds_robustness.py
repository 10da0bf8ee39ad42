"""Boundary and hostile arguments to every odds tool, through the MCP client on the files source: each
call answers or fails with a typed error, never INTERNAL, and the server keeps answering."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nt_mcp.server.app import build_server
from nt_mcp.tools.services import Services
from tests.conftest import make_settings
from tests.integration.test_odds_files import SAVED_AT, write
from tests.odds_fake import nba_board, scores

EDGE_TIMES = ["1970-01-01", "2099-12-31T23:59:59Z", "2026-03-01T18:00:00+14:00", None]
CALLS: list[tuple[str, dict[str, Any]]] = [
    *[("get_odds", {"sport": "basketball_nba", "commence_from": t, "commence_to": "2100-01-01"}) for t in EDGE_TIMES],
    ("get_odds", {"sport": "upcoming"}),
    ("get_odds", {"sport": "basketball_nba", "markets": ["outrights", "outrights_lay", "h2h_lay"], "max_events": 200}),
    ("get_odds", {"sport": "basketball_nba", "event_ids": ["ev-arb", "-", "_"], "odds_format": "probability"}),
    ("get_odds", {"sport": "basketball_nba", "bookmakers": ["x" * 64] * 100, "regions": ["us", "us", "au"]}),
    ("get_event_odds", {"sport": "basketball_nba", "event_id": "A" * 128, "markets": ["a" * 64] * 50}),
    ("get_event_odds", {"sport": "basketball_nba", "event_id": "ev-lay", "markets": ["h2h_lay"],
                        "odds_format": "fractional"}),
    ("get_events", {"sport": "basketball_nba", "commence_from": "2100-01-01", "commence_to": "2100-01-01"}),
    ("get_scores", {"sport": "basketball_nba", "days_from": 3}),
    ("get_sports", {"all": True}),
    *[("find_arbitrage", {"sport": "basketball_nba", "as_of": t}) for t in EDGE_TIMES],
    ("find_arbitrage", {"sport": "basketball_nba", "total_stake": "1000000000", "stake_unit": "0.01",
                        "min_profit_pct": 100, "max_quote_age_s": 1, "max_results": 1}),
    ("find_arbitrage", {"sport": "basketball_nba", "total_stake": "0.01", "stake_unit": "0.01",
                        "as_of": "2026-03-01T18:00:00Z", "commission": {"draftkings": 0, "fanduel": "0.5"}}),
    ("find_arbitrage", {"sport": "basketball_nba", "markets": ["spreads", "totals", "h2h"], "max_quote_age_s": None}),
    ("compare_bookmaker_margins", {"sport": "basketball_nba", "market": "outrights_lay"}),
    ("analyze_odds_movement", {"event_id": "ev-arb", "market": "zzz", "max_series": 1}),
    ("analyze_odds_movement", {"event_id": "-", "max_series": 500}),
    ("calculate_kelly", {"probability": "0.999999999", "odds": "1000000", "bankroll": "1000000000", "fraction": 1,
                         "max_fraction": 1}),
    ("calculate_kelly", {"probability": "0.000000001", "odds": "1.000001", "fraction": "0.000001"}),
    ("calculate_kelly", {"probability": 0.5, "odds": "1/1000000", "odds_format": "fractional"}),
    ("calculate_kelly", {"probability": 0.5, "odds": "\u0000", "odds_format": "american"}),
    ("convert_odds", {"value": "x" * 10_000}),
    ("convert_odds", {"value": 1e308, "from_format": "american"}),
    ("convert_odds", {"value": "0.999999999", "from_format": "probability"}),
    ("convert_odds", {"value": "1000000/1", "from_format": "fractional"}),
    ("remove_margin", {"odds": [1.000001] * 100, "method": "shin"}),
    ("remove_margin", {"odds": ["1000000", "1000000"], "method": "proportional"}),
    ("remove_margin", {"odds": ["+100", "-100", "+1000000"], "odds_format": "american", "method": "shin"}),
    ("odds_quota", {"refresh": True}),
]  # fmt: skip


@pytest.fixture
async def files(tmp_path: Path) -> AsyncIterator[Services]:
    odds_dir = tmp_path / "odds"
    board = nba_board(SAVED_AT)
    board[0]["commence_time"] = 4_102_444_799  # unix seconds, the last second before 2100
    board[1]["bookmakers"][0]["markets"][0]["outcomes"][0]["point"] = 10**12  # out of range: market skipped
    write(odds_dir, "basketball_nba.json", board, SAVED_AT)
    write(odds_dir, "basketball_nba.scores.json", [*scores(SAVED_AT), {"id": 1}, "junk", {"id": "x", "sport_key": "y",
          "commence_time": 1e30}], SAVED_AT)  # fmt: skip
    write(odds_dir, "upcoming.json", {"unexpected": True}, SAVED_AT)
    services = await Services.start(make_settings(tmp_path, odds_dir=odds_dir))
    try:
        yield services
    finally:
        await services.close()


async def test_boundary_and_hostile_arguments_never_fail_internally(files: Services) -> None:
    outcomes: list[str] = []
    async with Client(build_server(files)) as client:
        for tool, arguments in CALLS:
            result = await client.call_tool(tool, arguments)
            text = result.content[0].text  # type: ignore[union-attr]
            outcome = json.loads(text)["error"]["code"] if result.is_error else "ok"
            outcomes.append(outcome)
            assert outcome != "INTERNAL", (tool, arguments, text)
        still = await client.call_tool("get_sports", {})
    assert not still.is_error
    assert outcomes.count("ok") >= 20  # most boundary values are answers, not refusals
