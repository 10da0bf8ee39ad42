"""The odds tools against The Odds API v4 faked at the HTTP layer (respx, documented shapes), through the
real MCP client in memory: requests, costs and quota, the cache, error classification and retries,
snapshots in storage, arbitrage on a board with traps, bad input making no upstream call, and the key
never leaking anywhere."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import sqlalchemy as sa
from mcp import Client
from prometheus_client import REGISTRY, generate_latest
from pydantic import SecretStr

from nt_mcp.config import Settings
from nt_mcp.infra.schema import odds_fetches, odds_history
from nt_mcp.server.app import build_server
from nt_mcp.tools.services import Services
from tests.conftest import make_settings
from tests.odds_fake import BASE, KEY, SPORTS, answers, bookmaker, error, event, market, nba_board, ok, outcome, scores
from tests.results import error_of

ODDS = f"{BASE}/v4/sports/basketball_nba/odds"
FAST = {"retry_base_s": 0.001, "retry_max_backoff_s": 0.002, "retry_max_total_s": 5}


def _odds_settings(settings: Settings, **overrides: Any) -> Settings:
    values = {"odds_api_key": SecretStr(KEY), "odds_api_base_url": BASE} | FAST | overrides
    return settings.model_copy(update=values)


@pytest.fixture
def fake() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{BASE}/v4/sports").mock(return_value=ok(SPORTS))
        yield router


@pytest.fixture
async def api(tmp_path: Path, fake: respx.MockRouter) -> AsyncIterator[Services]:
    """SQLite storage, The Odds API faked."""
    services = await Services.start(_odds_settings(make_settings(tmp_path)))
    try:
        yield services
    finally:
        await services.close()


@pytest.fixture
async def api_both(storage_settings: Settings, fake: respx.MockRouter) -> AsyncIterator[Services]:
    """SQLite, then PostgreSQL storage; The Odds API faked; a short odds cache."""
    services = await Services.start(_odds_settings(storage_settings, odds_ttl_s=0.2))
    try:
        yield services
    finally:
        await services.close()


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    return dict(result.structured_content)


async def _call(services: Services, name: str, arguments: dict[str, Any]) -> Any:
    async with Client(build_server(services)) as client:
        return await client.call_tool(name, arguments)


# ---------------------------------------------------------------- requests, cost, quota, snapshots


async def test_get_odds_request_cost_quota_snapshot_times_and_movement(
    api_both: Services, fake: respx.MockRouter
) -> None:
    now = datetime.now(UTC)
    route = fake.get(ODDS).mock(side_effect=answers(nba_board(now), last=3, remaining=18_997, used=1_003))
    async with Client(build_server(api_both)) as client:
        body = _ok(
            await client.call_tool(
                "get_odds",
                {"sport": "basketball_nba", "regions": ["us"], "markets": ["h2h", "spreads", "totals"],
                 "odds_format": "american"},
            )
        )  # fmt: skip
        sent = route.calls.last.request.url.params
        assert dict(sent) == {
            "markets": "h2h,spreads,totals",
            "oddsFormat": "decimal",  # always decimal upstream; shown in american by us
            "dateFormat": "iso",
            "regions": "us",
            "apiKey": KEY,
        }
        assert body["source"] == "theoddsapi" and body["total_events"] == 4
        assert body["cost"] == {
            "expected_max": 3,
            "charged": 3,
            "formula": "3 market(s) x 1 region(s); 0 when no events are returned",
            "cached": False,
        }
        assert body["quota"]["remaining"] == 18_997 and body["quota"]["used"] == 1_003 and body["quota"]["last"] == 3
        assert body["request"].endswith("apiKey=[REDACTED]") and KEY not in body["request"]
        arb = next(e for e in body["events"] if e["id"] == "ev-arb")
        dk = next(b for b in arb["bookmakers"] if b["key"] == "draftkings")
        h2h = next(m for m in dk["markets"] if m["key"] == "h2h")
        assert h2h["last_update"] and h2h["outcomes"][0] == {
            "name": "Los Angeles Lakers", "description": None, "point": None, "price": 110.0, "decimal": 2.1
        }  # fmt: skip
        best = {(b["market"], b["name"], b["point"]): (b["bookmaker"], b["decimal"]) for b in arb["best_prices"]}
        assert best[("h2h", "Los Angeles Lakers", None)] == ("draftkings", 2.1)
        assert best[("h2h", "Boston Celtics", None)] == ("fanduel", 2.05)
        assert best[("spreads", "Los Angeles Lakers", -3.5)] == ("draftkings", 2.4)
        assert best[("spreads", "Los Angeles Lakers", -4.5)] == ("fanduel", 1.6)
        lay = next(e for e in body["events"] if e["id"] == "ev-lay")
        assert [m["key"] for b in lay["bookmakers"] for m in b["markets"]] == ["h2h", "h2h"]  # h2h_lay not asked for
        prices = sum(len(m["outcomes"]) for e in body["events"] for b in e["bookmakers"] for m in b["markets"])
        assert body["stored"]["prices"] == prices and body["stored"]["durable"] == "database"

        # the price moves; after the 0.2 s cache the next call fetches again and stores a second snapshot
        await asyncio.sleep(0.25)
        moved = nba_board(now + timedelta(minutes=5), lakers_price=1.95)
        route.mock(side_effect=answers(moved, last=3, remaining=18_994, used=1_006))
        again = _ok(
            await client.call_tool("get_odds", {"sport": "basketball_nba", "markets": ["h2h", "spreads", "totals"]})
        )
        assert again["cost"]["charged"] == 3 and again["quota"]["remaining"] == 18_994
        movement = _ok(await client.call_tool("analyze_odds_movement", {"event_id": "ev-arb", "market": "h2h"}))
    assert route.call_count == 2
    assert movement["source"] == "theoddsapi" and movement["prices_read"] == 8
    lakers = movement["series"][0]
    assert (lakers["bookmaker"], lakers["name"], lakers["opening"], lakers["latest"]) == (
        "draftkings", "Los Angeles Lakers", 2.1, 1.95
    )  # fmt: skip
    assert lakers["changes"] == 1 and lakers["probability_change"] == pytest.approx(1 / 1.95 - 1 / 2.1, abs=1e-8)
    assert lakers["biggest_move"]["at"] == lakers["latest_at"]
    async with api_both.db.connect() as conn:
        fetches = (await conn.execute(sa.select(odds_fetches))).mappings().all()
        rows = (await conn.execute(sa.select(sa.func.count()).select_from(odds_history))).scalar_one()
    assert [f["credits_charged"] for f in fetches] == [3, 3] and rows == 2 * prices
    assert all(KEY not in f["request"] and "apiKey=[REDACTED]" in f["request"] for f in fetches)


async def test_identical_calls_share_one_upstream_request(api: Services, fake: respx.MockRouter) -> None:
    route = fake.get(ODDS).mock(side_effect=answers(nba_board(datetime.now(UTC)), last=1))
    async with Client(build_server(api)) as client:
        results = await asyncio.gather(*(client.call_tool("get_odds", {"sport": "basketball_nba"}) for _ in range(6)))
        later = _ok(await client.call_tool("find_arbitrage", {"sport": "basketball_nba"}))
    bodies = [_ok(r) for r in results]
    assert route.call_count == 1  # six concurrent calls and a later one: one request, 1 credit
    assert sorted(b["cost"]["charged"] for b in bodies) == [0, 0, 0, 0, 0, 1]
    assert sum(b["stored"] is not None for b in bodies) == 1  # stored once
    assert later["cost"]["cached"] is True and later["cost"]["charged"] == 0


async def test_bookmakers_replace_regions_and_cost_one_region_per_ten(api: Services, fake: respx.MockRouter) -> None:
    route = fake.get(ODDS).mock(return_value=ok([], last=0))
    books = [f"book{i}" for i in range(12)]
    body = _ok(
        await _call(api, "get_odds", {"sport": "basketball_nba", "markets": ["h2h", "totals"], "bookmakers": books})
    )
    params = route.calls.last.request.url.params
    assert params["bookmakers"] == ",".join(books) and "regions" not in params
    assert body["cost"]["expected_max"] == 4  # 2 markets x ceil(12/10)
    assert body["count"] == 0 and body["cost"]["charged"] == 0  # an empty answer is free
    assert body["stored"]["prices"] == 0


# ---------------------------------------------------------------- errors by error_code, retries, breaker


async def test_out_of_usage_credits_is_not_retried(api: Services, fake: respx.MockRouter) -> None:
    route = fake.get(ODDS).mock(return_value=error(401, "OUT_OF_USAGE_CREDITS", "Usage quota has been reached."))
    failure = error_of(await _call(api, "get_odds", {"sport": "basketball_nba"}))
    assert route.call_count == 1
    assert failure["code"] == "ODDS_QUOTA_EXHAUSTED" and failure["retryable"] is False
    assert failure["context"]["upstream_error_code"] == "OUT_OF_USAGE_CREDITS"
    assert "NT_ODDS_DIR" in failure["message"] and KEY not in json.dumps(failure)
    assert api.upstreams.states()["the-odds-api"] == "closed"  # a business answer never trips the breaker
    quota = _ok(await _call(api, "odds_quota", {}))
    assert quota["quota"]["remaining"] == 0 and quota["checked_upstream"] is False  # the 401's headers were kept


async def test_invalid_key_names_the_setting(api: Services, fake: respx.MockRouter) -> None:
    route = fake.get(ODDS).mock(return_value=error(401, "INVALID_KEY", f"API key {KEY} is not valid"))
    failure = error_of(await _call(api, "get_odds", {"sport": "basketball_nba"}))
    assert route.call_count == 1 and failure["code"] == "ODDS_API_KEY_REJECTED"
    assert "NT_ODDS_API_KEY" in failure["message"] and KEY not in failure["message"]


async def test_429_waits_and_retries_then_answers_or_reports_rate_limited(
    tmp_path: Path, fake: respx.MockRouter
) -> None:
    services = await Services.start(_odds_settings(make_settings(tmp_path), retry_max_attempts=3))
    limited = error(429, "EXCEEDED_FREQ_LIMIT", "Too many requests", **{"retry-after": "0.05"})
    route = fake.get(ODDS).mock(side_effect=[limited, ok([], last=0)])
    try:
        assert _ok(await _call(services, "get_odds", {"sport": "basketball_nba"}))["count"] == 0
        assert route.call_count == 2
        route.mock(side_effect=None, return_value=limited)
        failure = error_of(await _call(services, "get_odds", {"sport": "basketball_nba", "markets": ["totals"]}))
        assert route.call_count == 5  # three attempts
        assert failure["code"] == "ODDS_RATE_LIMITED" and failure["retryable"] is True
        assert failure["retry_after_s"] == pytest.approx(0.05)
    finally:
        await services.close()


async def test_5xx_is_retried_then_opens_the_breaker(tmp_path: Path, fake: respx.MockRouter) -> None:
    services = await Services.start(
        _odds_settings(make_settings(tmp_path), retry_max_attempts=3, breaker_fail_max=3, breaker_reset_timeout_s=60)
    )
    route = fake.get(ODDS).mock(return_value=httpx.Response(503, text="upstream unavailable"))
    try:
        failure = error_of(await _call(services, "get_odds", {"sport": "basketball_nba"}))
        assert route.call_count == 3
        assert failure["code"] == "EXTERNAL_API_ERROR" and failure["retryable"] is True
        assert failure["context"]["status"] == 503
        refused = error_of(await _call(services, "get_odds", {"sport": "basketball_nba"}))
        assert refused["code"] == "SERVICE_UNAVAILABLE" and route.call_count == 3  # the breaker is open
    finally:
        await services.close()


async def test_a_sent_request_without_answer_is_not_retried_but_a_failed_connection_is(
    api: Services, fake: respx.MockRouter
) -> None:
    route = fake.get(ODDS).mock(side_effect=httpx.ReadTimeout("no answer"))
    timeout = error_of(await _call(api, "get_odds", {"sport": "basketball_nba"}))
    assert route.call_count == 1  # it may have been charged: never sent twice
    assert timeout["code"] == "NETWORK_ERROR" and timeout["retryable"] is False and "charged" in timeout["message"]
    route.mock(side_effect=httpx.ConnectError("refused"))
    refused = error_of(await _call(api, "get_odds", {"sport": "basketball_nba"}))
    assert route.call_count == 4  # never reached the API: retried, three attempts
    assert refused["code"] == "NETWORK_ERROR" and refused["retryable"] is True


async def test_422_invalid_market_and_404_event_not_found(api: Services, fake: respx.MockRouter) -> None:
    url = f"{BASE}/v4/sports/basketball_nba/events/ev-arb/odds"
    route = fake.get(url).mock(
        return_value=error(422, "INVALID_MARKET", "Markets not supported by this endpoint: player_goals_nba")
    )
    failure = error_of(
        await _call(
            api, "get_event_odds", {"sport": "basketball_nba", "event_id": "ev-arb", "markets": ["player_goals_nba"]}
        )
    )
    assert route.call_count == 1
    assert failure["code"] == "VALIDATION_ERROR" and failure["context"]["argument"] == "markets"
    assert failure["context"]["upstream_error_code"] == "INVALID_MARKET"
    missing = fake.get(f"{BASE}/v4/sports/basketball_nba/events/gone/odds").mock(
        return_value=error(404, "EVENT_NOT_FOUND", "Event not found. The event may have expired")
    )
    gone = error_of(await _call(api, "get_event_odds", {"sport": "basketball_nba", "event_id": "gone"}))
    assert missing.call_count == 1 and gone["code"] == "EVENT_NOT_FOUND" and gone["context"]["argument"] == "event_id"


async def test_event_odds_with_player_props(api: Services, fake: respx.MockRouter) -> None:
    now = datetime.now(UTC)
    fresh = now - timedelta(seconds=20)
    stamp = fresh.strftime("%Y-%m-%dT%H:%M:%SZ")
    points = market(
        "player_points", fresh,
        outcome("Over", 1.87, 25.5, "LeBron James"), outcome("Under", 1.95, 25.5, "LeBron James"),
        outcome("Over", 1.80, 27.5, "Jayson Tatum"), outcome("Under", 2.02, 27.5, "Jayson Tatum"),
    )  # fmt: skip
    props = event("ev-arb", now + timedelta(hours=5), "Los Angeles Lakers", "Boston Celtics",
                  bookmaker("fanduel", "FanDuel", fresh, points))  # fmt: skip
    assert props["bookmakers"][0]["last_update"] == stamp
    route = fake.get(f"{BASE}/v4/sports/basketball_nba/events/ev-arb/odds").mock(return_value=ok(props, last=1))
    body = _ok(
        await _call(
            api, "get_event_odds", {"sport": "basketball_nba", "event_id": "ev-arb", "markets": ["player_points"]}
        )
    )
    assert route.calls.last.request.url.params["markets"] == "player_points"
    assert body["cost"]["expected_max"] == 1 and body["cost"]["charged"] == 1
    best = {(b["description"], b["name"]): b["decimal"] for b in body["event"]["best_prices"]}
    assert best == {("LeBron James", "Over"): 1.87, ("LeBron James", "Under"): 1.95,
                    ("Jayson Tatum", "Over"): 1.8, ("Jayson Tatum", "Under"): 2.02}  # fmt: skip
    assert body["stored"]["prices"] == 4


async def test_historical_odds_cost_ten_times_and_need_a_paid_plan(api: Services, fake: respx.MockRouter) -> None:
    url = f"{BASE}/v4/historical/sports/basketball_nba/odds"
    route = fake.get(url).mock(
        return_value=error(
            401, "HISTORICAL_UNAVAILABLE_ON_FREE_USAGE_PLAN", "Historical data is only available on paid plans"
        )
    )
    failure = error_of(await _call(api, "get_odds", {"sport": "basketball_nba", "at": "2025-01-10T12:00:00Z"}))
    assert route.call_count == 1 and failure["code"] == "ODDS_PLAN_REQUIRED" and failure["retryable"] is False
    snapshot = {
        "timestamp": "2025-01-10T11:55:00Z",
        "previous_timestamp": "2025-01-10T11:50:00Z",
        "next_timestamp": "2025-01-10T12:00:00Z",
        "data": nba_board(datetime(2025, 1, 10, 11, 55, tzinfo=UTC)),
    }
    route.mock(return_value=ok(snapshot, last=20))
    body = _ok(
        await _call(
            api, "get_odds", {"sport": "basketball_nba", "markets": ["h2h", "totals"], "at": "2025-01-10T12:00"}
        )
    )
    assert route.calls.last.request.url.params["date"] == "2025-01-10T12:00:00Z"
    assert body["snapshot_at"] == "2025-01-10T11:55:00Z" and body["total_events"] == 4
    assert body["cost"]["expected_max"] == 20 and body["cost"]["charged"] == 20
    assert "x 10 (historical)" in body["cost"]["formula"]


# ---------------------------------------------------------------- arbitrage, margins, scores, events, quota


async def test_find_arbitrage_on_a_board_with_traps(api: Services, fake: respx.MockRouter) -> None:
    now = datetime.now(UTC)
    route = fake.get(ODDS).mock(side_effect=answers(nba_board(now), last=3))
    body = _ok(
        await _call(
            api,
            "find_arbitrage",
            {"sport": "basketball_nba", "markets": ["h2h", "spreads", "totals"], "total_stake": 1000,
             "max_quote_age_s": 600},
        )
    )  # fmt: skip
    assert route.calls.last.request.url.params["markets"] == "h2h,spreads,totals"
    assert body["count"] == 1
    [arb] = body["opportunities"]
    # Lakers 2.10 (draftkings) / Celtics 2.05 (fanduel): S = 0.963995; stakes 494 / 506; profit 37.30
    assert (arb["event_id"], arb["market"]) == ("ev-arb", "h2h")
    assert arb["implied_sum"] == pytest.approx(1 / 2.1 + 1 / 2.05)
    legs = {leg["name"]: (leg["bookmaker"], leg["price"], leg["stake"], leg["payout"]) for leg in arb["legs"]}
    assert legs == {
        "Los Angeles Lakers": ("draftkings", 2.1, "494", "1037.40"),
        "Boston Celtics": ("fanduel", 2.05, "506", "1037.30"),
    }
    assert (arb["total_staked"], arb["guaranteed_payout"], arb["profit"], arb["profit_pct"]) == (
        "1000", "1037.30", "37.30", "3.7300"
    )  # fmt: skip
    assert all(leg["last_update"] for leg in arb["legs"])
    # the spread lines -3.5 and -4.5 were never combined (that would have been S = 0.83), lay prices never priced
    assert body["excluded_counts"] == {"started": 1, "stale_quote": 1}
    reasons = {(e["event_id"], e["reason"]) for e in body["exclusions"]}
    assert reasons == {("ev-started", "started"), ("ev-stale", "stale_quote")}
    assert body["sets_checked"] == 6  # ev-arb: h2h, 2 spread lines, totals; ev-lay: h2h; ev-stale: fanduel's h2h
    assert body["quota"]["last"] == 3

    lay = _ok(
        await _call(
            api,
            "find_arbitrage",
            {"sport": "basketball_nba", "markets": ["h2h"], "commission": {"betfair_ex_uk": 0.02}},
        )
    )
    assert lay["commission"] == {"betfair_ex_uk": "0.02"}
    assert lay["count"] == 1  # cached board (no new request): the same h2h arbitrage


async def test_lay_markets_are_labelled_and_never_priced_as_back_odds(api: Services, fake: respx.MockRouter) -> None:
    now = datetime.now(UTC)
    lay_event = [e for e in nba_board(now) if e["id"] == "ev-lay"]
    route = fake.get(ODDS).mock(side_effect=answers(lay_event, last=2))
    board = _ok(await _call(api, "get_odds", {"sport": "basketball_nba", "markets": ["h2h", "h2h_lay"]}))
    kinds = [(b["key"], m["key"], m["lay"]) for e in board["events"] for b in e["bookmakers"] for m in b["markets"]]
    assert kinds == [("betfair_ex_uk", "h2h", False), ("betfair_ex_uk", "h2h_lay", True), ("williamhill", "h2h", False)]
    best = {(b["market"], b["name"]): b["lay"] for b in board["events"][0]["best_prices"]}
    assert best[("h2h_lay", "Denver Nuggets")] is True  # lay prices keep their own best prices
    # an answer that carries lay prices beside the back prices asked for (as an exchange board can):
    # the lay prices alone would look like an arbitrage (1/2.30 + 1/2.20 = 0.89) and are excluded
    route.mock(side_effect=None, return_value=ok(lay_event, last=1))
    body = _ok(await _call(api, "find_arbitrage", {"sport": "basketball_nba", "markets": ["h2h"]}))
    assert body["count"] == 0 and body["excluded_counts"] == {"lay_market": 1}
    assert body["exclusions"][0]["bookmaker"] == "betfair_ex_uk" and body["exclusions"][0]["market"] == "h2h_lay"
    assert body["closest"][0]["implied_sum"] == pytest.approx(1 / 1.95 + 1 / 1.98)


async def test_margins_scores_events_sports_and_quota(api: Services, fake: respx.MockRouter) -> None:
    now = datetime.now(UTC)
    fake.get(ODDS).mock(side_effect=answers(nba_board(now), last=1))
    scores_route = fake.get(f"{BASE}/v4/sports/basketball_nba/scores").mock(return_value=ok(scores(now), last=2))
    events_route = fake.get(f"{BASE}/v4/sports/basketball_nba/events").mock(
        return_value=ok([{k: v for k, v in e.items() if k != "bookmakers"} for e in nba_board(now)])
    )
    async with Client(build_server(api)) as client:
        margins = _ok(await client.call_tool("compare_bookmaker_margins", {"sport": "basketball_nba"}))
        games = _ok(await client.call_tool("get_scores", {"sport": "basketball_nba", "days_from": 2}))
        events = _ok(await client.call_tool("get_events", {"sport": "basketball_nba"}))
        sports = _ok(await client.call_tool("get_sports", {"all": True}))
        quota = _ok(await client.call_tool("odds_quota", {"refresh": True}))
    by_book = {m["bookmaker"]: m for m in margins["bookmakers"]}
    # draftkings h2h books: ev-arb 1/2.1+1/1.8, ev-started 1/2.3+1/1.7, ev-stale 1/2.3+1/1.7
    dk = [1 / 2.1 + 1 / 1.8 - 1, 1 / 2.3 + 1 / 1.7 - 1, 1 / 2.3 + 1 / 1.7 - 1]
    assert by_book["draftkings"]["books"] == 3
    assert by_book["draftkings"]["mean_overround_pct"] == pytest.approx(sum(dk) / 3 * 100, abs=1e-5)
    assert margins["bookmakers"][0]["bookmaker"] == "betfair_ex_uk"  # 1/1.95 + 1/1.98: the lowest
    assert scores_route.calls.last.request.url.params["daysFrom"] == "2"
    assert games["cost"]["expected_max"] == 2 and games["cost"]["charged"] == 2
    done = next(g for g in games["games"] if g["id"] == "ev-done")
    assert done["completed"] is True and done["scores"] == [
        {"name": "Miami Heat", "score": "104"}, {"name": "Boston Celtics", "score": "112"}
    ]  # fmt: skip
    assert events_route.call_count == 1 and events["count"] == 4 and events["cost"]["expected_max"] == 0
    assert {e["id"]: e["started"] for e in events["events"]}["ev-started"] is True
    assert [s["key"] for s in sports["sports"]] == [s["key"] for s in SPORTS]
    assert quota["checked_upstream"] is True and quota["quota"]["remaining"] == 19_000
    exported = generate_latest(REGISTRY).decode()
    assert "nt_mcp_odds_quota_remaining 19000.0" in exported
    assert 'nt_mcp_odds_credits_spent_total{endpoint="scores"}' in exported
    assert KEY not in exported


# ---------------------------------------------------------------- bad input: nothing sent upstream


@pytest.mark.parametrize(
    ("tool", "arguments", "argument"),
    [
        ("get_odds", {"sport": "NBA!"}, "sport"),
        ("get_odds", {"sport": "basketball_nba", "markets": ["moneyline"]}, "markets"),
        ("get_odds", {"sport": "basketball_nba", "regions": ["mars"]}, "regions"),
        ("get_odds", {"sport": "basketball_nba", "commence_from": "2030-01-02", "commence_to": "2030-01-01"},
         "commence_from"),
        ("get_event_odds", {"sport": "basketball_nba", "event_id": "../../v4/sports"}, "event_id"),
        ("find_arbitrage", {"sport": "basketball_nba", "markets": ["h2h_lay"]}, "markets"),
        ("find_arbitrage", {"sport": "basketball_nba", "total_stake": -5}, "total_stake"),
        ("find_arbitrage", {"sport": "basketball_nba", "commission": {"fanduel": 0.9}}, "commission.fanduel"),
        ("find_arbitrage", {"sport": "basketball_nba", "total_stake": 10, "stake_unit": 50}, "stake_unit"),
        ("get_scores", {"sport": "basketball_nba", "days_from": 9}, "days_from"),
        ("calculate_kelly", {"probability": 1.5, "odds": 2.0}, "probability"),
        ("calculate_kelly", {"probability": 0.5, "odds": 1.0}, "odds"),
        ("calculate_kelly", {"probability": 0.5, "odds": "-50", "odds_format": "american"}, "odds"),
        ("convert_odds", {"value": "7/0", "from_format": "fractional"}, "value"),
        ("remove_margin", {"odds": [2.0, 0.5]}, "odds[1]"),
        ("remove_margin", {"odds": [2.2, 2.2], "method": "shin"}, "odds"),
    ],
)  # fmt: skip
async def test_bad_input_is_refused_naming_the_argument_with_no_upstream_call(
    api: Services, fake: respx.MockRouter, tool: str, arguments: dict[str, Any], argument: str
) -> None:
    failure = error_of(await _call(api, tool, arguments))
    assert failure["code"] == "VALIDATION_ERROR"
    assert failure["context"]["argument"].startswith(argument)
    assert fake.calls.call_count == 0


async def test_unknown_sport_costs_no_credit(api: Services, fake: respx.MockRouter) -> None:
    route = fake.get(f"{BASE}/v4/sports/curling_world/odds").mock(return_value=ok([], last=1))
    failure = error_of(await _call(api, "find_arbitrage", {"sport": "curling_world"}))
    assert failure["code"] == "VALIDATION_ERROR" and failure["context"]["argument"] == "sport"
    assert route.call_count == 0  # refused from the free, cached sports list
    again = error_of(await _call(api, "get_odds", {"sport": "curling_world"}))
    assert again["code"] == "VALIDATION_ERROR" and fake.calls.call_count == 1  # the sports list, once


async def test_neither_source_configured(tmp_path: Path) -> None:
    services = await Services.start(make_settings(tmp_path))
    try:
        async with Client(build_server(services)) as client:
            for tool, arguments in [
                ("get_odds", {"sport": "basketball_nba"}),
                ("get_sports", {}),
                ("odds_quota", {}),
                ("find_arbitrage", {"sport": "basketball_nba"}),
            ]:
                failure = error_of(await client.call_tool(tool, arguments))
                assert failure["code"] == "NOT_CONFIGURED"
                assert failure["context"]["settings"] == ["NT_ODDS_API_KEY", "NT_ODDS_DIR"]
            kelly = _ok(
                await client.call_tool("calculate_kelly", {"probability": "0.58", "odds": "1.95", "bankroll": 1000})
            )
            assert kelly["stake"] == "137.89" and kelly["capped"] is False  # f* = (0.58 x 1.95 - 1)/0.95
    finally:
        await services.close()


# ---------------------------------------------------------------- the key never leaks


async def test_the_key_never_reaches_logs_results_errors_metrics_storage_or_cache(
    api: Services, fake: respx.MockRouter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    now = datetime.now(UTC)
    board = answers(nba_board(now), last=1)
    first = [httpx.Response(502)]  # one 5xx, retried, then the board
    fake.get(ODDS).mock(side_effect=lambda request: first.pop() if first else board(request))
    fake.get(f"{BASE}/v4/sports/basketball_nba/scores").mock(
        return_value=error(401, "OUT_OF_USAGE_CREDITS", f"Usage quota reached for key {KEY}")
    )
    fake.get(f"{BASE}/v4/sports/basketball_nba/events/ev-x/odds").mock(side_effect=httpx.ConnectError(f"boom {KEY}"))
    texts = []
    async with Client(build_server(api)) as client:
        for tool, arguments in [
            ("get_odds", {"sport": "basketball_nba"}),
            ("find_arbitrage", {"sport": "basketball_nba"}),
            ("get_scores", {"sport": "basketball_nba"}),
            ("get_event_odds", {"sport": "basketball_nba", "event_id": "ev-x"}),
            ("odds_quota", {"refresh": True}),
            ("get_audit_log", {"limit": 50}),
        ]:
            result = await client.call_tool(tool, arguments)
            texts.append(json.dumps(result.model_dump(mode="json")))
    assert fake.calls.call_count >= 5 and all(call.request.url.params.get("apiKey") == KEY for call in fake.calls)
    assert any('"ODDS_QUOTA_EXHAUSTED"' in t for t in texts) and any('"NETWORK_ERROR"' in t for t in texts)
    logged = [record.getMessage() for record in caplog.records]
    assert any("HTTP Request: GET https://odds.test/v4/sports/basketball_nba/odds" in line for line in logged)
    for text in [*texts, *logged, generate_latest(REGISTRY).decode()]:
        assert KEY not in text
    async with api.db.connect() as conn:
        stored = json.dumps([dict(r) for r in (await conn.execute(sa.select(odds_fetches))).mappings()], default=str)
    assert "apiKey=[REDACTED]" in stored and KEY not in stored
    memory = api.cache.backend._data  # type: ignore[attr-defined]
    assert memory and all(KEY not in key and KEY not in value for key, (_, value) in memory.items())


async def test_snapshots_are_spooled_while_postgres_is_down_and_replayed(
    own_postgres: Any, tmp_path: Path, fake: respx.MockRouter
) -> None:
    from tests.conftest import create_database

    url = await create_database(own_postgres.admin_url)
    services = await Services.start(_odds_settings(make_settings(tmp_path, database_url=url, db_connect_retries=1)))
    fake.get(ODDS).mock(side_effect=answers(nba_board(datetime.now(UTC)), last=1))
    try:
        own_postgres.halt()
        body = _ok(await _call(services, "get_odds", {"sport": "basketball_nba"}))
        assert body["stored"]["durable"] == "spool" and body["stored"]["prices"] == 16
        own_postgres.resume()
        report = await services.replayer.replay_once()
        assert report.remaining == 0
        async with services.db.connect() as conn:
            rows = (await conn.execute(sa.select(sa.func.count()).select_from(odds_history))).scalar_one()
            price = (
                await conn.execute(
                    sa.select(odds_history.c.price).where(
                        odds_history.c.event_id == "ev-arb", odds_history.c.bookmaker == "draftkings",
                        odds_history.c.outcome == "Los Angeles Lakers",
                    )
                )
            ).scalar_one()  # fmt: skip
        assert rows == 16 and price == Decimal("2.100000")
    finally:
        await services.close()
