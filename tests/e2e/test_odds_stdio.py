"""Every odds tool through the real MCP client against an `nt-mcp serve` subprocess over stdio: with the
files source (NT_ODDS_DIR), and with The Odds API faked by a local HTTP server (NT_ODDS_API_BASE_URL),
whose key must never show on the server's stderr."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

from mcp import Client, StdioServerParameters

from tests.cli import server_env
from tests.integration.test_odds_files import SAVED_AT, write
from tests.odds_fake import KEY, FakeOddsApi, nba_board, scores
from tests.results import error_of

ODDS_TOOLS = {
    "get_sports", "get_events", "get_odds", "get_event_odds", "get_scores", "find_arbitrage",
    "compare_bookmaker_margins", "analyze_odds_movement", "calculate_kelly", "convert_odds", "remove_margin",
    "odds_quota",
}  # fmt: skip


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    return dict(result.structured_content)


async def test_every_odds_tool_over_stdio_with_saved_answers(tmp_path: Path) -> None:
    odds_dir = tmp_path / "odds"
    write(odds_dir, "basketball_nba.json", nba_board(SAVED_AT), SAVED_AT)
    write(odds_dir, "basketball_nba.scores.json", scores(SAVED_AT), SAVED_AT)
    env = server_env(tmp_path / "data", NT_ODDS_DIR=str(odds_dir))
    params = StdioServerParameters(command=sys.executable, args=["-m", "nt_mcp", "serve"], env=env, cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=60) as client:
        listed = {t.name: t for t in (await client.list_tools()).tools}
        assert set(listed) >= ODDS_TOOLS
        assert all(listed[name].annotations.read_only_hint for name in ODDS_TOOLS)  # type: ignore[union-attr]
        assert _ok(await client.call_tool("get_sports", {}))["sports"][0]["key"] == "basketball_nba"
        assert _ok(await client.call_tool("get_events", {"sport": "basketball_nba"}))["count"] == 4
        odds = _ok(await client.call_tool("get_odds", {"sport": "basketball_nba", "odds_format": "american"}))
        assert odds["source"] == "files" and odds["stored"]["prices"] == 16
        event = _ok(await client.call_tool("get_event_odds", {"sport": "basketball_nba", "event_id": "ev-arb"}))
        assert event["event"]["home_team"] == "Los Angeles Lakers"
        assert _ok(await client.call_tool("get_scores", {"sport": "basketball_nba"}))["count"] == 2
        arbitrage = _ok(
            await client.call_tool("find_arbitrage", {"sport": "basketball_nba", "as_of": "2026-03-01T18:00:00Z"})
        )
        assert arbitrage["count"] == 1 and arbitrage["opportunities"][0]["profit"] == "37.30"
        margins = _ok(await client.call_tool("compare_bookmaker_margins", {"sport": "basketball_nba"}))
        assert margins["bookmakers"][0]["bookmaker"] == "betfair_ex_uk"
        movement = _ok(await client.call_tool("analyze_odds_movement", {"event_id": "ev-arb"}))
        assert movement["prices_read"] == 8 and movement["source"] == "files"  # get_odds and get_event_odds
        kelly = _ok(
            await client.call_tool("calculate_kelly", {"probability": 0.58, "odds": "+110", "odds_format": "american"})
        )
        assert kelly["stake"] == "198.18" and kelly["capped"] is False  # f* = (0.58 x 2.10 - 1)/1.10 = 0.19818
        assert (
            _ok(await client.call_tool("convert_odds", {"value": -110, "from_format": "american"}))["fractional"]
            == "10/11"
        )
        fair = _ok(await client.call_tool("remove_margin", {"odds": ["2.6", "2.4", "4.3"], "method": "shin"}))
        assert round(fair["outcomes"][0]["fair_probability"], 6) == 0.372994
        assert _ok(await client.call_tool("odds_quota", {}))["source"] == "files"
        bad = error_of(await client.call_tool("calculate_kelly", {"probability": 0, "odds": 2}))
        assert bad["code"] == "VALIDATION_ERROR" and bad["context"]["argument"] == "probability"


async def test_odds_tools_over_stdio_against_the_fake_api_never_log_the_key(tmp_path: Path) -> None:
    fake = FakeOddsApi()
    stderr = tmp_path / "stderr.log"
    with fake.serve() as base_url:
        env = server_env(tmp_path / "data", NT_ODDS_API_KEY=KEY, NT_ODDS_API_BASE_URL=base_url, NT_LOG_LEVEL="DEBUG")
        command = f"{shlex.quote(sys.executable)} -m nt_mcp serve 2> {shlex.quote(str(stderr))}"
        params = StdioServerParameters(command="/bin/sh", args=["-c", command], env=env, cwd=str(tmp_path))
        async with Client(params, read_timeout_seconds=60) as client:
            sports = _ok(await client.call_tool("get_sports", {}))
            odds = _ok(await client.call_tool("get_odds", {"sport": "basketball_nba", "markets": ["h2h", "totals"]}))
            arbitrage = _ok(await client.call_tool("find_arbitrage", {"sport": "basketball_nba"}))
            event = _ok(await client.call_tool("get_event_odds", {"sport": "basketball_nba", "event_id": "ev-arb"}))
            games = _ok(await client.call_tool("get_scores", {"sport": "basketball_nba", "days_from": 1}))
            events = _ok(await client.call_tool("get_events", {"sport": "basketball_nba"}))
            margins = _ok(await client.call_tool("compare_bookmaker_margins", {"sport": "basketball_nba"}))
            movement = _ok(await client.call_tool("analyze_odds_movement", {"event_id": "ev-arb"}))
            quota = _ok(await client.call_tool("odds_quota", {"refresh": True}))
            missing = error_of(await client.call_tool("get_event_odds", {"sport": "basketball_nba", "event_id": "x1"}))
    assert sports["source"] == "theoddsapi" and sports["cost"]["expected_max"] == 0
    assert odds["cost"]["charged"] == 2 and odds["quota"]["last"] == 2 and odds["stored"]["prices"] == 20
    assert arbitrage["count"] == 1 and arbitrage["cost"]["charged"] == 1  # h2h only: another request, 1 credit
    assert arbitrage["opportunities"][0]["profit"] == "37.30"
    assert event["cost"]["charged"] == 1 and games["cost"]["charged"] == 2 and events["cost"]["charged"] == 0
    assert margins["cost"]["cached"] is True  # the same h2h request as find_arbitrage, within 30 s
    assert movement["prices_read"] == 16 and movement["source"] == "theoddsapi"  # get_odds 8, find_arbitrage 4, event 4
    assert quota["checked_upstream"] is True and quota["quota"]["remaining"] == fake.remaining
    assert missing["code"] == "EVENT_NOT_FOUND"
    assert all(f"apiKey={KEY}" in path for path in fake.requests)  # the key travelled upstream...
    logged = stderr.read_text()
    assert '"tool call"' in logged and KEY not in logged  # ...and nowhere else
