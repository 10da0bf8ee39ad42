"""The files source (NT_ODDS_DIR): saved answers of The Odds API analysed through the MCP client in memory,
on SQLite and PostgreSQL: every odds tool, movement between two versions of a file, American prices,
historical snapshots, and files that cannot be used."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nt_mcp.config import Settings
from nt_mcp.server.app import build_server
from nt_mcp.tools.services import Services
from tests.conftest import make_settings
from tests.odds_fake import nba_board, scores
from tests.results import error_of

SAVED_AT = datetime(2026, 3, 1, 18, 0, tzinfo=UTC)  # the board's "now" when it was saved


def write(directory: Path, name: str, body: Any, mtime: datetime) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(json.dumps(body))
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    body = dict(result.structured_content)
    return body


@pytest.fixture
async def files(storage_settings: Settings, tmp_path: Path) -> AsyncIterator[Services]:
    odds_dir = tmp_path / "odds"
    write(odds_dir, "basketball_nba.json", nba_board(SAVED_AT), SAVED_AT)
    write(odds_dir, "basketball_nba.scores.json", scores(SAVED_AT), SAVED_AT)
    services = await Services.start(storage_settings.model_copy(update={"odds_dir": odds_dir}))
    try:
        yield services
    finally:
        await services.close()


async def test_every_odds_tool_on_saved_answers(files: Services, tmp_path: Path) -> None:
    async with Client(build_server(files)) as client:
        sports = _ok(await client.call_tool("get_sports", {}))
        assert sports["sports"] == [
            {"key": "basketball_nba", "title": "NBA", "group": None, "description": None, "active": None,
             "has_outrights": None, "events": 4}
        ]  # fmt: skip
        assert sports["source"] == "files" and sports["quota"] is None

        events = _ok(await client.call_tool("get_events", {"sport": "basketball_nba", "commence_from": SAVED_AT}))
        assert [e["id"] for e in events["events"]] == ["ev-arb", "ev-lay", "ev-stale"]  # ev-started began before

        odds = _ok(await client.call_tool("get_odds", {"sport": "basketball_nba", "markets": ["h2h", "spreads"]}))
        assert odds["source"] == "files" and odds["request"] == "basketball_nba.json"
        assert odds["fetched_at"] == "2026-03-01T18:00:00Z"  # the file's modification time
        assert odds["cost"] == {
            "expected_max": 0,
            "charged": None,
            "formula": "files source: no credits",
            "cached": False,
        }
        assert odds["quota"] is None and odds["stored"]["prices"] == 20 and odds["stored"]["durable"] == "database"
        arb = next(e for e in odds["events"] if e["id"] == "ev-arb")
        assert {m["key"] for b in arb["bookmakers"] for m in b["markets"]} == {"h2h", "spreads"}  # totals filtered
        assert all(m["last_update"] == "2026-03-01T17:59:30Z" for b in arb["bookmakers"] for m in b["markets"])

        one = _ok(
            await client.call_tool(
                "get_event_odds",
                {"sport": "basketball_nba", "event_id": "ev-arb", "markets": ["totals"], "odds_format": "fractional"},
            )
        )
        over = next(b for b in one["event"]["best_prices"] if b["name"] == "Over")
        assert (over["bookmaker"], over["decimal"], over["price"], over["point"]) == (
            "draftkings",
            1.91,
            "91/100",
            220.5,
        )

        games = _ok(await client.call_tool("get_scores", {"sport": "basketball_nba", "days_from": 1}))
        assert games["count"] == 2 and games["request"] == "basketball_nba.scores.json"

        arbitrage = _ok(
            await client.call_tool(
                "find_arbitrage",
                {"sport": "basketball_nba", "as_of": "2026-03-01T18:00:00Z", "total_stake": "250", "stake_unit": "0.5"},
            )
        )
        [found] = arbitrage["opportunities"]
        # S = 1/2.10 + 1/2.05; stakes 250 x 0.476190/0.963995 = 123.49 -> 123.5 and 126.51 -> 126.5
        assert [(leg["bookmaker"], leg["stake"]) for leg in found["legs"]] == [
            ("fanduel", "126.5"),
            ("draftkings", "123.5"),
        ]
        assert found["profit"] == "9.32"  # 126.5 x 2.05 = 259.325, paid 259.32
        assert arbitrage["as_of"] == "2026-03-01T18:00:00Z"
        assert arbitrage["excluded_counts"] == {"started": 1, "stale_quote": 1}
        # judged now (2026 is long past for this board), every event has started
        stale_view = _ok(await client.call_tool("find_arbitrage", {"sport": "basketball_nba"}))
        assert stale_view["count"] == 0 and stale_view["excluded_counts"] == {"started": 4}

        margins = _ok(
            await client.call_tool("compare_bookmaker_margins", {"sport": "basketball_nba", "market": "totals"})
        )
        # draftkings 2/1.91 - 1 = 4.712%, fanduel 1/1.87 + 1/1.95 - 1 = 4.76%
        assert [(m["bookmaker"], m["books"]) for m in margins["bookmakers"]] == [("draftkings", 1), ("fanduel", 1)]
        assert margins["bookmakers"][0]["mean_overround_pct"] == pytest.approx((2 / 1.91 - 1) * 100, abs=1e-5)

        quota = _ok(await client.call_tool("odds_quota", {}))
        assert quota == {
            "source": "files",
            "quota": None,
            "checked_upstream": False,
            "note": "the files source reads saved answers and uses no credits",
        }

        # a newer save of the same board: the Lakers shortened from 2.10 to 1.95
        later = SAVED_AT + timedelta(minutes=10)
        write(tmp_path / "odds", "basketball_nba.json", nba_board(later, lakers_price=1.95), later)
        again = _ok(await client.call_tool("get_odds", {"sport": "basketball_nba", "markets": ["h2h", "spreads"]}))
        assert again["cost"]["cached"] is False and again["fetched_at"] == "2026-03-01T18:10:00Z"
        movement = _ok(await client.call_tool("analyze_odds_movement", {"event_id": "ev-arb", "market": "h2h"}))
    top = movement["series"][0]
    assert (top["bookmaker"], top["name"], top["opening"], top["latest"]) == (
        "draftkings",
        "Los Angeles Lakers",
        2.1,
        1.95,
    )
    assert top["opening_at"] == "2026-03-01T17:59:30Z" and top["latest_at"] == "2026-03-01T18:09:30Z"
    assert movement["source"] == "files" and movement["series_count"] == 4 and movement["quota"] is None
    assert [s["changes"] for s in movement["series"]] == [1, 0, 0, 0]


async def test_american_prices_and_a_historical_snapshot(tmp_path: Path) -> None:
    odds_dir = tmp_path / "odds"
    board = nba_board(SAVED_AT)
    for e in board:
        for b in e["bookmakers"]:
            for m in b["markets"]:
                for o in m["outcomes"]:  # decimal -> American as the API sends it with oddsFormat=american
                    d = o["price"]
                    o["price"] = round((d - 1) * 100) if d >= 2 else round(-100 / (d - 1))
    write(odds_dir, "basketball_nba.json", {"timestamp": "2026-03-01T17:55:00Z", "data": board}, SAVED_AT)
    services = await Services.start(make_settings(tmp_path, odds_dir=odds_dir, odds_files_format="american"))
    try:
        async with Client(build_server(services)) as client:
            body = _ok(await client.call_tool("get_odds", {"sport": "basketball_nba"}))
            refused = error_of(await client.call_tool("get_odds", {"sport": "basketball_nba", "at": "2026-03-01"}))
    finally:
        await services.close()
    assert body["snapshot_at"] == "2026-03-01T17:55:00Z"
    arb = next(e for e in body["events"] if e["id"] == "ev-arb")
    lakers = next(b for b in arb["best_prices"] if b["name"] == "Los Angeles Lakers")
    assert (lakers["decimal"], lakers["price"]) == (2.1, 2.1)  # +110 read as 2.10
    assert refused["code"] == "VALIDATION_ERROR" and refused["context"]["argument"] == "at"


async def test_files_that_cannot_be_used_say_why(tmp_path: Path) -> None:
    odds_dir = tmp_path / "odds"
    write(odds_dir, "icehockey_nhl.json", "not a list", SAVED_AT)
    (odds_dir / "soccer_epl.json").write_text("{broken")
    broken = nba_board(SAVED_AT)
    broken[0]["bookmakers"][0]["markets"][0]["outcomes"][0]["price"] = "2.1"  # a string, not a number
    broken[1]["commence_time"] = "soon"
    write(odds_dir, "basketball_nba.json", [*broken, 42], SAVED_AT)
    services = await Services.start(make_settings(tmp_path, odds_dir=odds_dir))
    try:
        async with Client(build_server(services)) as client:
            not_a_board = error_of(await client.call_tool("get_odds", {"sport": "icehockey_nhl"}))
            not_json = error_of(await client.call_tool("get_odds", {"sport": "soccer_epl"}))
            missing = error_of(await client.call_tool("get_scores", {"sport": "basketball_nba"}))
            unknown = error_of(await client.call_tool("get_odds", {"sport": "tennis_atp"}))
            partial = _ok(await client.call_tool("get_odds", {"sport": "basketball_nba"}))
            no_event = error_of(
                await client.call_tool("get_event_odds", {"sport": "basketball_nba", "event_id": "nope"})
            )
    finally:
        await services.close()
    assert not_a_board["context"]["argument"] == "sport" and "a JSON list of events" in not_a_board["message"]
    assert not_json["code"] == "VALIDATION_ERROR" and "not readable JSON" in not_json["message"]
    assert "basketball_nba.scores.json" in missing["message"]
    assert unknown["code"] == "VALIDATION_ERROR" and "tennis_atp" in unknown["message"]
    assert partial["skipped"] == 3 and partial["total_events"] == 3
    assert any("no valid decimal price" in r for r in partial["skip_reasons"])
    assert any("commence_time" in r for r in partial["skip_reasons"])
    assert no_event["code"] == "EVENT_NOT_FOUND"
