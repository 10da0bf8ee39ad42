"""find_arbitrage over a large board: 1,000 events x 40 bookmakers x 3 markets (h2h, spreads, totals).

    python benchmarks/bench_odds.py [--events 1000] [--books 40] [--runs 5] [--seed 7]

The board is built in The Odds API's own JSON shape (seeded): every bookmaker prices each event's h2h,
one of three spread lines and one of three total lines with a 3-6% margin, and one event in fifty has a
bookmaker whose h2h price on one side is boosted enough to make an arbitrage. Measured, best of
``--runs``: parsing the JSON into the domain (`adapters.odds.parse.parse_events`), the arbitrage scan
(`domain.betting.find_arbitrage`: best prices matched by name and point, completeness checks, staleness,
exact check of S < 1, stakes rounded and profit recomputed), and both together. The goal is well
under a second for the scan.

``--tool`` also times the `find_arbitrage` tool end to end through the MCP client (in memory) with the
files source and a fresh SQLite store: the first call reads the file and stores every price as a
snapshot (240,000 rows), the second call on the same file version only parses and scans.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from nt_mcp.adapters.odds.parse import gc_paused, parse_events
from nt_mcp.domain.betting import ArbitrageQuery, ArbitrageReport, EventOdds, find_arbitrage


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def priced(probabilities: list[float], margin: float, rng: random.Random) -> list[float]:
    """Decimal odds for fair ``probabilities`` with about ``margin`` overround and a little noise."""
    return [round(1 / (p * (1 + margin) * rng.uniform(0.985, 1.015)), 2) for p in probabilities]


def board(events: int, books: int, now: datetime, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    updated = iso(now - timedelta(seconds=40))
    out = []
    for e in range(events):
        home, away = f"Home {e}", f"Away {e}"
        p_home = rng.uniform(0.25, 0.75)
        spread_lines = [rng.choice([-1.5, -2.5, -3.5, -4.5, -5.5]) for _ in range(3)]
        total_lines = [round(rng.uniform(180, 240)) + 0.5 for _ in range(3)]
        boosted = rng.randrange(books) if e % 50 == 0 else -1
        bookmakers = []
        for b in range(books):
            margin = rng.uniform(0.03, 0.06)
            h, a = priced([p_home, 1 - p_home], margin, rng)
            if b == boosted:
                h = round(h * 1.12, 2)
            spread = rng.choice(spread_lines)
            total = rng.choice(total_lines)
            s1, s2 = priced([0.5, 0.5], margin, rng)
            t1, t2 = priced([0.5, 0.5], margin, rng)
            bookmakers.append(
                {
                    "key": f"book{b:02d}",
                    "title": f"Book {b:02d}",
                    "last_update": updated,
                    "markets": [
                        {"key": "h2h", "last_update": updated,
                         "outcomes": [{"name": home, "price": h}, {"name": away, "price": a}]},
                        {"key": "spreads", "last_update": updated,
                         "outcomes": [{"name": home, "price": s1, "point": spread},
                                      {"name": away, "price": s2, "point": -spread}]},
                        {"key": "totals", "last_update": updated,
                         "outcomes": [{"name": "Over", "price": t1, "point": total},
                                      {"name": "Under", "price": t2, "point": total}]},
                    ],
                }
            )  # fmt: skip
        out.append(
            {
                "id": f"event{e:05d}",
                "sport_key": "basketball_nba",
                "sport_title": "NBA",
                "commence_time": iso(now + timedelta(hours=1 + e % 48)),
                "home_team": home,
                "away_team": away,
                "bookmakers": bookmakers,
            }
        )
    return out


def best_of(runs: int, work: Any) -> tuple[float, float, Any]:
    """Fastest and median wall time of ``runs`` calls, and the last result (the previous result is
    freed before each timed call, so its deallocation is not counted)."""
    times = []
    result = None
    for _ in range(runs):
        result = None
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return min(times), statistics.median(times), result


async def tool_timings(raw: list[dict[str, Any]], now: datetime) -> tuple[float, float, int]:
    """Wall time of the find_arbitrage tool: first call (stores snapshots) and second call (same file)."""
    import json
    import tempfile
    from pathlib import Path

    from mcp import Client

    from nt_mcp.config import Settings
    from nt_mcp.server.app import build_server
    from nt_mcp.tools.services import Services

    with tempfile.TemporaryDirectory() as root:
        odds_dir = Path(root) / "odds"
        odds_dir.mkdir()
        (odds_dir / "basketball_nba.json").write_text(json.dumps(raw))
        settings = Settings(_env_file=None, data_home=Path(root) / "data", odds_dir=odds_dir, tool_timeout_s=600)  # type: ignore[call-arg]
        services = await Services.start(settings)
        arguments = {"sport": "basketball_nba", "markets": ["h2h", "spreads", "totals"], "as_of": now.isoformat()}
        try:
            async with Client(build_server(services)) as client:
                timings = []
                for _ in range(2):
                    started = time.perf_counter()
                    result = await client.call_tool("find_arbitrage", arguments)
                    timings.append(time.perf_counter() - started)
                    if result.is_error:
                        raise SystemExit(result.content[0].text)  # type: ignore[union-attr]
        finally:
            await services.close()
    return timings[0], timings[1], int(result.structured_content["count"])  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--books", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--tool", action="store_true", help="also time the tool end to end (files source, SQLite)")
    args = parser.parse_args()

    now = datetime.now(UTC)
    raw = board(args.events, args.books, now, args.seed)
    prices = sum(len(m["outcomes"]) for e in raw for b in e["bookmakers"] for m in b["markets"])
    query = ArbitrageQuery(
        markets=frozenset({"h2h", "spreads", "totals"}),
        now=now.timestamp(),
        total_stake=Decimal(1000),
        stake_unit=Decimal(1),
        max_quote_age_s=600,
        max_results=200,
    )
    parse_best, parse_median, parsed = best_of(args.runs, lambda: parse_events(raw))
    events = [e.odds for e in parsed.events]

    def scan(events: list[EventOdds]) -> ArbitrageReport:
        with gc_paused():  # as the odds service runs it
            return find_arbitrage(events, query)

    scan_best, scan_median, report = best_of(args.runs, lambda: scan(events))
    total_best, total_median, _ = best_of(args.runs, lambda: scan([e.odds for e in parse_events(raw).events]))
    markets = args.events * args.books * 3
    print(f"board: {args.events} events x {args.books} bookmakers x 3 markets = {markets:,} books, {prices:,} prices")
    print(f"parse JSON -> domain   best {parse_best:.3f} s  median {parse_median:.3f} s")
    print(f"find_arbitrage scan    best {scan_best:.3f} s  median {scan_median:.3f} s  "
          f"({prices / scan_best / 1e6:.2f} M prices/s)")  # fmt: skip
    print(f"parse + scan           best {total_best:.3f} s  median {total_median:.3f} s")
    print(f"complete sets priced {report.sets_checked:,}; arbitrages {len(report.opportunities)}; "
          f"excluded {report.excluded_counts or 'none'}")  # fmt: skip
    if report.opportunities:
        top = report.opportunities[0]
        print(f"best: {top.event.event_id} {top.market} S={top.implied_sum:.6f} profit {top.profit} "
              f"({top.profit_pct}%) on {top.total_staked}")  # fmt: skip

    if args.tool:
        import asyncio

        first, second, found = asyncio.run(tool_timings(raw, now))
        print(f"find_arbitrage tool, files source: first call {first:.3f} s (parse, store {prices:,} snapshot rows, "
              f"scan), second call {second:.3f} s (parse, scan); {found} arbitrages")  # fmt: skip


if __name__ == "__main__":
    main()
