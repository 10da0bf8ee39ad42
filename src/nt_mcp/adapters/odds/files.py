"""Saved answers of The Odds API in ``NT_ODDS_DIR``: for users without a key, real snapshots to analyse.

- ``<sport_key>.json``: the answer of ``/v4/sports/{sport_key}/odds`` (a list of events), e.g. saved with
  ``curl -o basketball_nba.json 'https://api.the-odds-api.com/v4/sports/basketball_nba/odds?regions=us&markets=h2h,spreads,totals&apiKey=...'``,
  or of the historical endpoint (``{"timestamp", "data": [...]}``; ``timestamp`` is then the snapshot time).
  Prices in decimal odds, or American with ``NT_ODDS_FILES_FORMAT=american``.
- ``<sport_key>.scores.json``: the answer of ``/v4/sports/{sport_key}/scores``.

The sports are the files present. ``regions`` do not apply (a file holds what was saved); markets,
bookmakers, event ids and the commence window filter the file's events. ``fetched_at`` is the file's
modification time. Nothing here costs credits: ``quota`` is None and the cost 0. A file is read again
only when its size or modification time changed. Like a cached API answer, the same request against the
same version of a file counts as fetched once (its prices are stored as snapshots once); a changed file
or a different request is a fresh fetch.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nt_mcp.adapters.odds.model import Cost, Fetched, OddsRequest, PriceFormat, Quota, SourceName
from nt_mcp.adapters.odds.parse import gc_paused, to_seconds
from nt_mcp.errors import NotFoundError, ValidationError

_SPORT_FILE = re.compile(r"^([a-z0-9_]{1,64})\.json$")
_SCORES_FILE = re.compile(r"^([a-z0-9_]{1,64})\.scores\.json$")
MAX_FILE_BYTES = 200 * 1024 * 1024
_FREE = Cost(0, None, "files source: no credits")


@dataclass(frozen=True)
class _Loaded:
    stamp: tuple[int, int]  # (mtime_ns, size)
    data: Any
    snapshot_at: datetime | None


class FilesOdds:
    """Odds from saved API answers (see the module docstring for the layout)."""

    name: SourceName = "files"

    def __init__(self, directory: Path, price_format: PriceFormat = "decimal") -> None:
        self.directory = Path(directory)
        self.price_format = price_format
        self._loaded: dict[Path, _Loaded] = {}
        self._served: set[tuple[Any, ...]] = set()  # (file, version, request) answered before

    def __repr__(self) -> str:
        return f"FilesOdds({str(self.directory)!r})"

    def _path(self, sport: str, suffix: str = ".json") -> Path:
        if not re.fullmatch(r"[a-z0-9_]{1,64}", sport):
            raise ValidationError("a sport key is lowercase letters, digits and _", argument="sport")
        return self.directory / f"{sport}{suffix}"

    def _available(self, pattern: re.Pattern[str]) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except OSError:
            return []
        return sorted(m.group(1) for n in names if (m := pattern.match(n)) and (self.directory / n).is_file())

    def _first_time(self, path: Path, loaded: _Loaded, request: tuple[Any, ...]) -> bool:
        """Whether this request is answered from this version of the file for the first time."""
        served = (path, loaded.stamp, request)
        if served in self._served:
            return False
        if len(self._served) > 10_000:
            self._served.clear()
        self._served.add(served)
        return True

    def _read(self, path: Path) -> _Loaded:
        """The file's parsed JSON (read again only when its size or modification time changed)."""
        try:
            stat = path.stat()
        except OSError:
            raise FileNotFoundError(path.name) from None
        stamp = (stat.st_mtime_ns, stat.st_size)
        known = self._loaded.get(path)
        if known is not None and known.stamp == stamp:
            return known
        if stat.st_size > MAX_FILE_BYTES:
            raise ValidationError(f"{path.name} is larger than {MAX_FILE_BYTES} bytes", argument="sport")
        try:
            raw = path.read_bytes()
            with gc_paused():
                data = json.loads(raw)
        except (OSError, ValueError) as error:
            raise ValidationError(
                f"{path.name} in NT_ODDS_DIR is not readable JSON ({type(error).__name__})", argument="sport"
            ) from None
        snapshot_at = None
        if isinstance(data, dict) and "data" in data:  # a historical answer
            stamp_s = to_seconds(data.get("timestamp"))
            snapshot_at = datetime.fromtimestamp(stamp_s, UTC) if stamp_s is not None else None
            data = data["data"]
        loaded = _Loaded(stamp, data, snapshot_at)
        self._loaded[path] = loaded
        return loaded

    async def _load(self, sport: str, suffix: str, endpoint: str) -> tuple[_Loaded, Path]:
        path = self._path(sport, suffix)
        try:
            loaded = await asyncio.to_thread(self._read, path)
        except FileNotFoundError:
            pattern = _SCORES_FILE if suffix != ".json" else _SPORT_FILE
            have = ", ".join(self._available(pattern)[:30]) or "none"
            raise ValidationError(
                f"NT_ODDS_DIR has no {path.name} ({endpoint}); {pattern_name(pattern)}: {have}",
                argument="sport",
            ) from None
        return loaded, path

    def _fetched(self, data: Any, endpoint: str, path: Path, loaded: _Loaded, fresh: bool) -> Fetched:
        return Fetched(
            data=data,
            source="files",
            endpoint=endpoint,
            request=path.name,
            fetched_at=datetime.fromtimestamp(loaded.stamp[0] / 1e9, UTC),
            cost=_FREE,
            quota=None,
            cached=not fresh,
            snapshot_at=loaded.snapshot_at,
        )

    async def _events(self, sport: str, endpoint: str) -> tuple[list[Any], _Loaded, Path]:
        loaded, path = await self._load(sport, ".json", endpoint)
        if not isinstance(loaded.data, list):
            raise ValidationError(
                f"{path.name} is not a /v4/sports/{{sport}}/odds answer (a JSON list of events)", argument="sport"
            )
        return loaded.data, loaded, path

    async def sports(self, all_sports: bool) -> Fetched:
        """One entry per ``<sport_key>.json``: the key and the ``sport_title`` its events carry."""
        sports = []
        for key in self._available(_SPORT_FILE):
            try:
                events, _, _ = await self._events(key, "sports")
            except ValidationError:
                continue
            title = next((e.get("sport_title") for e in events if isinstance(e, dict) and e.get("sport_title")), None)
            sports.append({"key": key, "title": title, "events": len(events)})
        return Fetched(sports, "files", "sports", "NT_ODDS_DIR/*.json", datetime.now(UTC), _FREE, None, False)

    async def sport_keys(self) -> set[str] | None:
        return set(self._available(_SPORT_FILE))

    async def events(self, sport: str, commence_from: datetime | None, commence_to: datetime | None) -> Fetched:
        events, loaded, path = await self._events(sport, "events")
        window = _window(commence_from, commence_to)
        listed = [
            {k: v for k, v in e.items() if k != "bookmakers"}
            for e in events
            if isinstance(e, dict) and window(e.get("commence_time"))
        ]
        return self._fetched(listed, "events", path, loaded, False)

    async def odds(self, request: OddsRequest) -> Fetched:
        if request.at is not None:
            raise ValidationError(
                "the files source holds saved snapshots only; 'at' (historical odds) needs NT_ODDS_API_KEY",
                argument="at",
            )
        events, loaded, path = await self._events(request.sport, "odds")
        fresh = self._first_time(path, loaded, ("odds", request))
        window = _window(request.commence_from, request.commence_to)
        ids = set(request.event_ids)
        chosen = [  # items that are not events are kept: the parser counts them as skipped, with a reason
            _filtered(e, request) if isinstance(e, dict) else e
            for e in events
            if not isinstance(e, dict) or (window(e.get("commence_time")) and (not ids or e.get("id") in ids))
        ]
        return self._fetched(chosen, "odds", path, loaded, fresh)

    async def event_odds(self, event_id: str, request: OddsRequest) -> Fetched:
        if request.at is not None:
            raise ValidationError(
                "the files source holds saved snapshots only; 'at' (historical odds) needs NT_ODDS_API_KEY",
                argument="at",
            )
        events, loaded, path = await self._events(request.sport, "event_odds")
        fresh = self._first_time(path, loaded, ("event_odds", event_id, request))
        for event in events:
            if isinstance(event, dict) and event.get("id") == event_id:
                return self._fetched(_filtered(event, request), "event_odds", path, loaded, fresh)
        raise NotFoundError(
            f"{path.name} has no event {event_id!r}", code="EVENT_NOT_FOUND", context={"argument": "event_id"}
        )

    async def scores(self, sport: str, days_from: int | None) -> Fetched:
        loaded, path = await self._load(sport, ".scores.json", "scores")
        fresh = self._first_time(path, loaded, ("scores",))
        if not isinstance(loaded.data, list):
            raise ValidationError(f"{path.name} is not a /v4/sports/{{sport}}/scores answer", argument="sport")
        return self._fetched(loaded.data, "scores", path, loaded, fresh)

    def last_quota(self) -> Quota | None:
        return None

    async def refresh_quota(self) -> Quota | None:
        return None

    async def close(self) -> None:
        self._loaded.clear()


def pattern_name(pattern: re.Pattern[str]) -> str:
    return "sports with a scores file" if pattern is _SCORES_FILE else "sports with an odds file"


def _window(start: datetime | None, end: datetime | None) -> Any:
    low = start.timestamp() if start else None
    high = end.timestamp() if end else None

    def inside(value: Any) -> bool:
        if low is None and high is None:
            return True
        moment = to_seconds(value)
        return moment is not None and (low is None or moment >= low) and (high is None or moment <= high)

    return inside


def _filtered(event: dict[str, Any], request: OddsRequest) -> dict[str, Any]:
    """``event`` with only the requested markets and bookmakers (as the API would answer)."""
    markets = set(request.markets)
    books = set(request.bookmakers)
    kept = []
    for book in event.get("bookmakers") or ():
        if not isinstance(book, dict) or (books and book.get("key") not in books):
            continue
        chosen = [m for m in book.get("markets") or () if isinstance(m, dict) and m.get("key") in markets]
        if chosen:
            kept.append(book | {"markets": chosen})
    return event | {"bookmakers": kept}
