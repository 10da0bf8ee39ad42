"""The Odds API v4 as its documentation shows it: answers for respx and for a small local HTTP server.

Shapes (the-odds-api.com/liveapi/guides/v4): events ``{id, sport_key, sport_title, commence_time,
home_team, away_team, bookmakers: [{key, title, last_update, markets: [{key, last_update, outcomes:
[{name, price, point?, description?}]}]}]}``; errors ``{"message", "error_code", "details_url"}``; quota
headers ``x-requests-remaining``, ``x-requests-used``, ``x-requests-last`` on every answer.

The board `nba_board` is built relative to ``now`` so that it has, on purpose:
- ``ev-arb``: an h2h arbitrage (Lakers 2.10 at draftkings, Celtics 2.05 at fanduel; S = 0.963995),
  spreads on two different lines (-3.5 and -4.5, which must never be combined) and a totals line;
- ``ev-lay``: exchange back and lay prices (betfair_ex_uk h2h and h2h_lay; the lay prices alone would
  look like an arbitrage);
- ``ev-started``: an arbitrage on an event that started 30 minutes ago;
- ``ev-stale``: an arbitrage whose best Heat price was last updated 2 hours ago.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

KEY = "0ddsk3y5ecret0f7e57a9b1c2d3e4f56"
BASE = "https://odds.test"
DETAILS = "https://the-odds-api.com/liveapi/guides/v4/api-error-codes.html#"


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def outcome(name: str, price: float, point: float | None = None, description: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "price": price}
    if point is not None:
        out["point"] = point
    if description is not None:
        out["description"] = description
    return out


def market(key: str, updated: datetime, *outcomes: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "last_update": iso(updated), "outcomes": list(outcomes)}


def bookmaker(key: str, title: str, updated: datetime, *markets: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "title": title, "last_update": iso(updated), "markets": list(markets)}


def event(
    event_id: str, commence: datetime, home: str, away: str, *books: dict[str, Any], sport: str = "basketball_nba"
) -> dict[str, Any]:
    return {
        "id": event_id,
        "sport_key": sport,
        "sport_title": "NBA" if sport == "basketball_nba" else sport,
        "commence_time": iso(commence),
        "home_team": home,
        "away_team": away,
        "bookmakers": list(books),
    }


def nba_board(now: datetime, lakers_price: float = 2.10) -> list[dict[str, Any]]:
    fresh = now - timedelta(seconds=30)
    tonight = now + timedelta(hours=5)
    return [
        event(
            "ev-arb",
            tonight,
            "Los Angeles Lakers",
            "Boston Celtics",
            bookmaker(
                "draftkings", "DraftKings", fresh,
                market("h2h", fresh, outcome("Los Angeles Lakers", lakers_price), outcome("Boston Celtics", 1.80)),
                market("spreads", fresh,
                       outcome("Los Angeles Lakers", 2.40, -3.5), outcome("Boston Celtics", 1.60, 3.5)),
                market("totals", fresh, outcome("Over", 1.91, 220.5), outcome("Under", 1.91, 220.5)),
            ),
            bookmaker(
                "fanduel", "FanDuel", fresh,
                market("h2h", fresh, outcome("Boston Celtics", 2.05), outcome("Los Angeles Lakers", 1.85)),
                market("spreads", fresh,
                       outcome("Los Angeles Lakers", 1.60, -4.5), outcome("Boston Celtics", 2.40, 4.5)),
                market("totals", fresh, outcome("Over", 1.87, 220.5), outcome("Under", 1.95, 220.5)),
            ),
        ),
        event(
            "ev-lay",
            tonight,
            "Denver Nuggets",
            "Phoenix Suns",
            bookmaker(
                "betfair_ex_uk", "Betfair", fresh,
                market("h2h", fresh, outcome("Denver Nuggets", 1.95), outcome("Phoenix Suns", 1.98)),
                market("h2h_lay", fresh, outcome("Denver Nuggets", 2.30), outcome("Phoenix Suns", 2.20)),
            ),
            bookmaker(
                "williamhill", "William Hill", fresh,
                market("h2h", fresh, outcome("Denver Nuggets", 1.90), outcome("Phoenix Suns", 1.90)),
            ),
        ),
        event(
            "ev-started",
            now - timedelta(minutes=30),
            "Miami Heat",
            "New York Knicks",
            bookmaker("draftkings", "DraftKings", fresh,
                      market("h2h", fresh, outcome("Miami Heat", 2.30), outcome("New York Knicks", 1.70))),
            bookmaker("fanduel", "FanDuel", fresh,
                      market("h2h", fresh, outcome("Miami Heat", 1.65), outcome("New York Knicks", 2.25))),
        ),
        event(
            "ev-stale",
            tonight,
            "Miami Heat",
            "Chicago Bulls",
            bookmaker("draftkings", "DraftKings", now - timedelta(hours=2),
                      market("h2h", now - timedelta(hours=2),
                             outcome("Miami Heat", 2.30), outcome("Chicago Bulls", 1.70))),
            bookmaker("fanduel", "FanDuel", fresh,
                      market("h2h", fresh, outcome("Miami Heat", 1.65), outcome("Chicago Bulls", 2.25))),
        ),
    ]  # fmt: skip


SPORTS = [
    {"key": "basketball_nba", "group": "Basketball", "title": "NBA", "description": "US Basketball",
     "active": True, "has_outrights": False},
    {"key": "americanfootball_nfl", "group": "American Football", "title": "NFL", "description": "US Football",
     "active": True, "has_outrights": False},
    {"key": "soccer_epl", "group": "Soccer", "title": "EPL", "description": "English Premier League",
     "active": False, "has_outrights": False},
]  # fmt: skip


def scores(now: datetime) -> list[dict[str, Any]]:
    return [
        {
            "id": "ev-done",
            "sport_key": "basketball_nba",
            "sport_title": "NBA",
            "commence_time": iso(now - timedelta(days=1)),
            "completed": True,
            "home_team": "Miami Heat",
            "away_team": "Boston Celtics",
            "scores": [{"name": "Miami Heat", "score": "104"}, {"name": "Boston Celtics", "score": "112"}],
            "last_update": iso(now - timedelta(hours=20)),
        },
        {
            "id": "ev-arb",
            "sport_key": "basketball_nba",
            "sport_title": "NBA",
            "commence_time": iso(now + timedelta(hours=5)),
            "completed": False,
            "home_team": "Los Angeles Lakers",
            "away_team": "Boston Celtics",
            "scores": None,
            "last_update": None,
        },
    ]


def quota(remaining: int = 19_000, used: int = 1_000, last: int = 0) -> dict[str, str]:
    return {"x-requests-remaining": str(remaining), "x-requests-used": str(used), "x-requests-last": str(last)}


def ok(body: Any, last: int = 0, remaining: int = 19_000, used: int = 1_000) -> httpx.Response:
    return httpx.Response(200, json=body, headers=quota(remaining, used, last))


def error(status: int, code: str, message: str, **headers: str) -> httpx.Response:
    body = {"message": message, "error_code": code, "details_url": DETAILS + code.lower()}
    return httpx.Response(status, json=body, headers=quota(0 if code == "OUT_OF_USAGE_CREDITS" else 100, 500) | headers)


class FakeOddsApi:
    """The Odds API over real HTTP on 127.0.0.1 (for an `nt-mcp serve` subprocess): sports, odds,
    event odds, events and scores of `nba_board`, each with quota headers, and a 401 for a wrong key."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.now = datetime.now(UTC)
        self.remaining = 19_000

    def answer(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any, int]:
        if query.get("apiKey") != [KEY]:
            return 401, {"message": "API key is not valid", "error_code": "INVALID_KEY"}, 0
        board = nba_board(self.now)
        parts = path.strip("/").split("/")
        markets = (query.get("markets") or ["h2h"])[0].split(",")
        regions = len((query.get("regions") or ["us"])[0].split(","))
        if parts == ["v4", "sports"]:
            return 200, SPORTS, 0
        if len(parts) == 4 and parts[3] == "odds":
            chosen = [_only(e, markets) for e in board]
            return 200, chosen, len(markets) * regions
        if len(parts) == 4 and parts[3] == "events":
            return 200, [{k: v for k, v in e.items() if k != "bookmakers"} for e in board], 0
        if len(parts) == 4 and parts[3] == "scores":
            return 200, scores(self.now), 2 if "daysFrom" in query else 1
        if len(parts) == 6 and parts[3] == "events" and parts[5] == "odds":
            found = [e for e in board if e["id"] == parts[4]]
            if not found:
                return 404, {"message": "Event not found", "error_code": "EVENT_NOT_FOUND"}, 0
            return 200, _only(found[0], markets), len(markets) * regions
        return 404, {"message": "Not found", "error_code": "NOT_FOUND"}, 0

    @contextmanager
    def serve(self) -> Iterator[str]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                fake.requests.append(self.path)
                status, body, cost = fake.answer(url.path, parse_qs(url.query))
                fake.remaining -= cost
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in quota(fake.remaining, 20_000 - fake.remaining, cost).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _only(raw_event: dict[str, Any], markets: list[str]) -> dict[str, Any]:
    books = []
    for book in raw_event["bookmakers"]:
        kept = [m for m in book["markets"] if m["key"] in markets]
        if kept:
            books.append(book | {"markets": kept})
    return raw_event | {"bookmakers": books}


def answers(board: list[dict[str, Any]], last: int | None = None, remaining: int = 19_000, used: int = 1_000) -> Any:
    """A respx side effect answering ``/odds`` as the API does: only the requested markets; the cost
    (markets x regions, 0 for no events) unless ``last`` says otherwise."""

    def answer(request: httpx.Request) -> httpx.Response:
        markets = request.url.params.get("markets", "h2h").split(",")
        chosen = [e for e in (_only(e, markets) for e in board) if e["bookmakers"]]
        regions = len(request.url.params.get("regions", "us").split(","))
        cost = last if last is not None else (len(markets) * regions if chosen else 0)
        return ok(chosen, last=cost, remaining=remaining, used=used)

    return answer
