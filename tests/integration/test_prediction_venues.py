"""The Polymarket and Kalshi adapters against respx fakes in the venues' documented shapes."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import httpx
import pytest
import respx

from nt_mcp.adapters.prediction.venues import PredictionVenues, build_venues
from nt_mcp.config import Settings
from nt_mcp.errors import ExternalAPIError, NotFoundError, RateLimitError, ServiceUnavailableError, ValidationError
from nt_mcp.infra.cache import Cache, MemoryBackend
from nt_mcp.infra.resilience import Upstreams
from tests.prediction_fakes import (
    CLOB,
    GAMMA,
    KALSHI,
    NO_TOKEN,
    POLY_ID,
    SERIES,
    TICKER,
    YES_TOKEN,
    clob_book,
    gamma_market,
    kalshi_book,
    kalshi_event,
    kalshi_market,
    prediction_settings,
    serve_kalshi,
    serve_polymarket,
)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return prediction_settings(tmp_path)


@pytest.fixture
async def venues(settings: Settings) -> AsyncIterator[PredictionVenues]:
    upstreams = Upstreams(settings)
    built = build_venues(settings, upstreams, Cache(MemoryBackend(), 60))
    try:
        yield built
    finally:
        await built.close()
        upstreams.close()


async def test_polymarket_json_string_fields_are_aligned_by_index(venues: PredictionVenues) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_polymarket(router, market=gamma_market(prices=("0.61", "0.39")))
        market = await venues.market("polymarket", POLY_ID, with_rules=True)
    assert market.outcomes == ["Yes", "No"] and market.token_ids == [YES_TOKEN, NO_TOKEN]
    assert market.last_price == D("0.61") and market.fee_rate == D("0.04")
    assert market.status == "open" and market.resolution is None and not market.resolution_final
    assert market.tick_ranges[0].step == D("0.01") and market.venue == "polymarket"
    assert market.rules is not None and "FOMC" in market.rules
    assert market.fetched_at.tzinfo is not None


async def test_polymarket_book_best_is_the_last_element(venues: PredictionVenues) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_polymarket(
            router,
            yes_book=clob_book(
                YES_TOKEN,
                [("0.48", "10"), ("0.45", "20"), ("0.40", "30")],
                [("0.52", "5"), ("0.55", "15"), ("0.60", "25")],
            ),
        )
        market = await venues.market("polymarket", POLY_ID)
        raw = (await httpx.AsyncClient().get(f"{CLOB}/book", params={"token_id": YES_TOKEN})).json()
        book = await venues.book(market, "yes")
    assert raw["bids"][-1]["price"] == "0.48" and raw["asks"][-1]["price"] == "0.52"  # as the CLOB sends them
    assert book.best_bid == D("0.48") and book.best_ask == D("0.52")
    assert [lv.price for lv in book.asks] == [D("0.52"), D("0.55"), D("0.60")]
    assert book.venue_timestamp == datetime.fromtimestamp(1796083200.123, UTC)


async def test_polymarket_midpoint_accepts_mid_and_mid_price(venues: PredictionVenues) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_polymarket(router)
        market = await venues.market("polymarket", POLY_ID)
        route = router.get(f"{CLOB}/midpoint").mock(return_value=httpx.Response(200, json={"mid": "0.55"}))
        assert await venues.polymarket.midpoint(market, "yes") == D("0.55")
        route.mock(return_value=httpx.Response(200, json={"mid_price": "0.545"}))
        assert await venues.polymarket.midpoint(market, "yes") == D("0.545")


async def test_polymarket_history_uses_the_token_and_interval_or_range(venues: PredictionVenues) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_polymarket(router)
        market = await venues.market("polymarket", POLY_ID)
        history = await venues.history(market, None, None, 60)
        params = router.calls.last.request.url.params
        assert params["market"] == YES_TOKEN and params["interval"] == "max" and params["fidelity"] == "60"
        assert [p.p for p in history.points] == [D("0.52"), D("0.55")] and history.note is None
        start, end = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
        await venues.history(market, start, end, 60)
        params = router.calls.last.request.url.params
        assert "interval" not in params and params["startTs"] == str(int(start.timestamp()))
        assert params["endTs"] == str(int(end.timestamp()))


async def test_resolved_polymarket_history_uses_fidelity_720_and_says_when_empty(venues: PredictionVenues) -> None:
    resolved = gamma_market(prices=("1", "0"), closed=True, uma="resolved")
    with respx.mock(assert_all_called=False) as router:
        serve_polymarket(router, market=resolved)
        router.get(f"{CLOB}/prices-history").mock(return_value=httpx.Response(200, json={"history": []}))
        market = await venues.market("polymarket", POLY_ID)
        assert market.status == "resolved" and market.resolution == "yes" and market.resolution_final
        history = await venues.history(market, None, None, 60)
        assert router.calls.last.request.url.params["fidelity"] == "720"
    assert history.points == [] and history.fidelity_minutes == 720
    assert history.note is not None and "720" in history.note and "no prices" in history.note


async def test_kalshi_book_is_bids_only_and_asks_are_one_minus_the_other_side(venues: PredictionVenues) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(
            router,
            book=kalshi_book(
                yes=[("0.4100", "500.00"), ("0.4300", "120.00")], no=[("0.5300", "300.00"), ("0.5500", "80.00")]
            ),
        )
        market = await venues.market("kalshi", TICKER.lower())
        yes = await venues.book(market, "yes")
        no = await venues.book(market, "no")
    assert market.id == TICKER and market.yes_bid == D("0.43") and market.volume == D("48210")
    assert yes.best_bid == D("0.43") and yes.best_ask == D("0.45")  # YES ask = 1 - best NO bid 0.55
    assert [(lv.price, lv.size) for lv in yes.asks] == [(D("0.45"), D(80)), (D("0.47"), D(300))]
    assert no.best_bid == D("0.55") and no.best_ask == D("0.57")  # NO ask = 1 - best YES bid 0.43
    assert yes.derived is not None and "bids only" in yes.derived


async def test_kalshi_empty_or_null_book_sides(venues: PredictionVenues) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router, book={"orderbook_fp": {"yes_dollars": None, "no_dollars": [["0.5000", "10.00"]]}})
        market = await venues.market("kalshi", TICKER)
        book = await venues.book(market, "yes")
    assert book.bids == [] and book.best_ask == D("0.50")


async def test_kalshi_search_excludes_multivariate_and_filters_text(venues: PredictionVenues) -> None:
    plain = kalshi_market()
    combo = kalshi_market("KXMVECROSSCATEGORY-26-ABC", mve="KXMVECROSSCATEGORY", title="Parlay: Fed hold and ...")
    with respx.mock(assert_all_called=False) as router:
        route = router.get(f"{KALSHI}/events").mock(
            return_value=httpx.Response(200, json={"events": [kalshi_event([plain, combo])], "cursor": ""})
        )
        found = await venues.search("kalshi", "fed", None, "open", "volume", 20)
        assert route.calls.last.request.url.params["with_nested_markets"] == "true"
        none = await venues.search("kalshi", "bitcoin", None, "open", "volume", 20)
        other = await venues.search("kalshi", None, "Sports", "open", "volume", 20)
    assert [m.id for m in found] == [TICKER] and none == [] and other == []


async def test_kalshi_history_reads_candles_of_the_series(venues: PredictionVenues) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_kalshi(router)
        market = await venues.market("kalshi", TICKER)
        history = await venues.history(market, None, None, 30)
        request = router.calls.last.request
    assert request.url.path.endswith(f"/series/{SERIES}/markets/{TICKER}/candlesticks")
    assert request.url.params["period_interval"] == "60" and history.fidelity_minutes == 60
    assert [p.p for p in history.points] == [D("0.42"), D("0.44")]  # trade close, then mid of bid/ask close
    assert history.note is not None and "60-minute" in history.note


async def test_gamma_listing_asks_for_active_open_markets(venues: PredictionVenues) -> None:
    with respx.mock(assert_all_called=False) as router:
        serve_polymarket(router)
        found = await venues.search("polymarket", None, "Economics", "open", "volume", 5)
        params = router.calls.last.request.url.params
    assert params["active"] == "true" and params["closed"] == "false" and params["order"] == "volume24hr"
    assert [m.id for m in found] == [POLY_ID]


async def test_429_without_retry_after_waits_and_retries(venues: PredictionVenues) -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.get(f"{KALSHI}/markets/{TICKER}").mock(
            side_effect=[
                httpx.Response(429, json={"error": {"code": "too_many_requests"}}),
                httpx.Response(200, json={"market": kalshi_market()}),
            ]
        )
        started = time.perf_counter()
        market = await venues.market("kalshi", TICKER)
        waited = time.perf_counter() - started
    assert market.id == TICKER and route.call_count == 2
    assert waited >= 1.0  # no Retry-After: the default 1 s wait, not the 0.01 s backoff


async def test_429_every_time_is_rate_limited(venues: PredictionVenues) -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{KALSHI}/markets/{TICKER}").mock(return_value=httpx.Response(429))
        with pytest.raises(RateLimitError) as limited:
            await venues.market("kalshi", TICKER)
    assert limited.value.retry_after_s == 1.0


async def test_5xx_is_service_unavailable_then_the_breaker_fails_fast(venues: PredictionVenues) -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.get(f"{GAMMA}/markets/{POLY_ID}").mock(return_value=httpx.Response(503))
        serve_kalshi(router)
        for _ in range(2):
            with pytest.raises(ServiceUnavailableError) as down:
                await venues.market("polymarket", POLY_ID)
            assert down.value.retry_after_s is not None and down.value.retry_after_s > 0
            assert down.value.to_dict()["context"]["service"] == "polymarket-gamma"
        calls = route.call_count
        with pytest.raises(ServiceUnavailableError):
            await venues.market("polymarket", POLY_ID)
        assert route.call_count == calls  # breaker open: nothing sent
        assert (await venues.market("kalshi", TICKER)).id == TICKER  # the other venue is still served


async def test_unreachable_venue_is_service_unavailable(venues: PredictionVenues) -> None:
    with respx.mock(assert_all_called=False) as router:
        router.get(f"{KALSHI}/markets/{TICKER}").mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(ServiceUnavailableError) as down:
            await venues.market("kalshi", TICKER)
    assert down.value.code == "SERVICE_UNAVAILABLE" and down.value.retry_after_s


async def test_unknown_market_is_not_found_and_bad_ids_send_nothing(venues: PredictionVenues) -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.get(f"{KALSHI}/markets/KXNOPE-1").mock(
            return_value=httpx.Response(404, json={"error": {"code": "not_found", "message": "market not found"}})
        )
        with pytest.raises(NotFoundError):
            await venues.market("kalshi", "KXNOPE-1")
        assert route.call_count == 1  # a 404 is an answer: not retried
        for venue, bad in (("kalshi", "has space"), ("polymarket", "../../etc"), ("polymarket", "Not_A_Slug")):
            with pytest.raises(ValidationError):
                await venues.market(venue, bad)  # type: ignore[arg-type]
        assert len(router.calls) == 1


async def test_an_unreadable_answer_is_an_external_api_error_not_an_internal_one(venues: PredictionVenues) -> None:
    odd = gamma_market() | {"category": {"not": "text"}, "events": []}
    with respx.mock(assert_all_called=False) as router:
        serve_polymarket(router, market=odd)
        with pytest.raises(ExternalAPIError) as unreadable:
            await venues.market("polymarket", POLY_ID)
        assert unreadable.value.code == "EXTERNAL_API_ERROR" and unreadable.value.service == "polymarket"
        serve_polymarket(router)
        router.get(f"{CLOB}/book", params={"token_id": YES_TOKEN}).mock(
            return_value=httpx.Response(200, json=clob_book(YES_TOKEN, [], []) | {"timestamp": "9" * 40})
        )
        await venues.polymarket.cache.delete(f"prediction:polymarket:market:{POLY_ID}")
        market = await venues.market("polymarket", POLY_ID)
        with pytest.raises(ExternalAPIError):
            await venues.book(market, "yes")
