"""Market data: the hub's choice of source, synthetic and file sources, and Alpaca faked at the HTTP layer
(requests-mock, Alpaca's documented v2 JSON shapes) with batching, caching, error mapping and no key leaks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
import requests_mock as rm
from mcp import Client
from pydantic import SecretStr
from pydantic import ValidationError as PydanticValidationError

from nt_mcp.adapters.data.market import (
    CLOSED_RANGE_TTL_S,
    AlpacaMarketData,
    FilesMarketData,
    MarketDataHub,
    SyntheticMarketData,
)
from nt_mcp.config import Settings, describe_settings_error
from nt_mcp.errors import (
    BusinessLogicError,
    ExternalAPIError,
    NetworkError,
    ServiceUnavailableError,
    ValidationError,
)
from nt_mcp.infra.cache import build_cache
from nt_mcp.infra.resilience import Upstreams
from nt_mcp.server.app import build_server
from nt_mcp.tools.services import Services
from tests.conftest import make_settings

KEY_ID = "AKFAKEKEYID0001"
SECRET = "fake-secret-0123456789abcdef"
BARS_URL = "https://data.alpaca.markets/v2/stocks/bars"
QUOTES_URL = "https://data.alpaca.markets/v2/stocks/quotes/latest"
JAN = datetime(2024, 1, 2, tzinfo=UTC)
FEB = datetime(2024, 2, 1, tzinfo=UTC)


def _bar(day: int, close: float) -> dict[str, Any]:
    """One bar as Alpaca's v2 bars endpoint sends it."""
    return {
        "t": f"2024-01-{day:02d}T05:00:00Z",
        "o": close - 1,
        "h": close + 1,
        "l": close - 2,
        "c": close,
        "v": 1000 + day,
        "n": 10,
        "vw": close - 0.5,
    }


def _hub(tmp_path: Path, **overrides: Any) -> MarketDataHub:
    settings = make_settings(tmp_path, **overrides)
    return MarketDataHub(settings, Upstreams(settings), build_cache(None, 60))


def _alpaca(tmp_path: Path, **overrides: Any) -> AlpacaMarketData:
    values = {
        "alpaca_api_key": KEY_ID,
        "alpaca_secret_key": SECRET,
        "retry_base_s": 0.001,
        "retry_max_backoff_s": 0.002,
    } | overrides
    source = _hub(tmp_path, **values).get("alpaca")
    assert isinstance(source, AlpacaMarketData)
    return source


@pytest.fixture
def http() -> Iterator[rm.Mocker]:
    with rm.Mocker() as mocker:
        yield mocker


def _write_csv(directory: Path, symbol: str, rows: list[tuple[str, float]]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp,open,high,low,close,volume"] + [f"{t},{c},{c + 1},{c - 1},{c},100" for t, c in rows]
    (directory / f"{symbol}.csv").write_text("\n".join(lines) + "\n")


# ---------------------------------------------------------------- choosing a source


def test_default_source_is_the_best_configured(tmp_path: Path) -> None:
    assert _hub(tmp_path).default_source == "synthetic"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _hub(tmp_path, data_dir=empty).default_source == "synthetic"
    _write_csv(tmp_path / "market", "SPY", [("2024-01-02", 470.0)])
    assert _hub(tmp_path, data_dir=tmp_path / "market").default_source == "files"
    keyed = _hub(tmp_path, data_dir=tmp_path / "market", alpaca_api_key=KEY_ID, alpaca_secret_key=SECRET)
    assert keyed.default_source == "alpaca" and keyed.configured() == ["alpaca", "files", "synthetic"]
    chosen = _hub(tmp_path, alpaca_api_key=KEY_ID, alpaca_secret_key=SECRET, market_data_source="synthetic")
    assert chosen.default_source == "synthetic"
    assert isinstance(chosen.get(None), SyntheticMarketData)


def test_unconfigured_sources_say_which_settings_to_set(tmp_path: Path) -> None:
    hub = _hub(tmp_path, alpaca_api_key=KEY_ID)  # the secret is missing
    with pytest.raises(ValidationError) as alpaca:
        hub.get("alpaca")
    assert alpaca.value.argument == "data_source"
    assert "NT_ALPACA_API_KEY" in alpaca.value.message and "NT_ALPACA_SECRET_KEY" in alpaca.value.message
    assert KEY_ID not in alpaca.value.message
    with pytest.raises(ValidationError) as files:
        hub.get("files")
    assert files.value.argument == "data_source" and "NT_DATA_DIR" in files.value.message
    with pytest.raises(ValidationError) as unknown:
        hub.get("bloomberg")
    assert unknown.value.argument == "data_source"


@pytest.mark.parametrize(
    ("values", "needs"),
    [
        ({"market_data_source": "alpaca", "alpaca_api_key": KEY_ID}, "NT_ALPACA_SECRET_KEY"),
        ({"market_data_source": "files"}, "NT_DATA_DIR"),
    ],
)
def test_a_default_source_without_its_settings_is_refused_at_start(values: dict[str, Any], needs: str) -> None:
    with pytest.raises(PydanticValidationError) as refused:
        Settings(_env_file=None, **values)  # type: ignore[call-arg]
    line = describe_settings_error(refused.value)
    assert needs in line and KEY_ID not in line


def test_blank_key_settings_count_as_unset(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, alpaca_api_key="  ", alpaca_secret_key="", data_dir="")  # type: ignore[call-arg]
    assert settings.alpaca_api_key is None and settings.alpaca_secret_key is None and settings.data_dir is None
    assert KEY_ID not in repr(make_settings(tmp_path, alpaca_api_key=KEY_ID, alpaca_secret_key=SECRET))


# ---------------------------------------------------------------- synthetic and files


async def test_synthetic_source_is_deterministic_for_a_given_time() -> None:
    source = SyntheticMarketData()
    a = await source.get_bars("DEMO", "1Hour", JAN, FEB)
    b = await source.get_bars("DEMO", "1Hour", JAN, FEB)
    assert np.array_equal(a.close, b.close) and len(a) == 22 * 24 + 1  # 22 weekdays in Jan 2..31, then Feb 1
    moment = datetime(2024, 3, 6, 14, 37, 12, tzinfo=UTC)  # a Wednesday
    quote = await SyntheticMarketData(now=lambda: moment).latest_quote("DEMO")
    again = await SyntheticMarketData(now=lambda: moment).latest_quote("DEMO")
    assert quote == again and quote.source == "synthetic" and quote.bid is None
    assert quote.timestamp == datetime(2024, 3, 6, 14, 36, tzinfo=UTC)  # the last finished minute, 14:36-14:37
    weekend = await SyntheticMarketData(now=lambda: datetime(2024, 3, 9, 12, 0, tzinfo=UTC)).latest_quote("DEMO")
    assert weekend.timestamp == datetime(2024, 3, 8, 23, 59, tzinfo=UTC)  # Saturday: Friday's last trading minute
    at_moment = SyntheticMarketData(now=lambda: moment)  # bars end at the last minute finished by `moment`
    minutes = await at_moment.get_bars("DEMO", "1Min", datetime(2024, 3, 6, 14, 0, tzinfo=UTC), moment)
    assert quote.price == Decimal(str(round(float(minutes.close[-1]), 4)))  # quotes agree with the bars
    with pytest.raises(ValidationError) as bad:
        await source.get_bars("DEMO", "2Min", JAN, FEB)
    assert bad.value.argument == "timeframe"
    with pytest.raises(ValidationError) as backwards:
        await source.get_bars("DEMO", "1Day", FEB, JAN)
    assert backwards.value.argument == "start"


async def test_files_source_reads_the_range_and_quotes_the_last_close(tmp_path: Path) -> None:
    _write_csv(tmp_path, "SPY", [("2024-01-02", 470.0), ("2024-01-03", 468.5), ("2024-01-04", 467.25)])
    source = FilesMarketData(tmp_path)
    bars = await source.get_bars("SPY", "1Day", datetime(2024, 1, 3, tzinfo=UTC), FEB)
    assert bars.close.tolist() == [468.5, 467.25]
    quote = await source.latest_quote("SPY")
    assert quote.price == Decimal("467.25") and quote.bid is None and quote.source == "files"
    assert quote.timestamp == datetime(2024, 1, 4, tzinfo=UTC)
    with pytest.raises(ValidationError) as missing:
        await source.get_bars("QQQ", "1Day", JAN, FEB)
    assert missing.value.argument == "symbol"
    with pytest.raises(ValidationError) as empty:
        await source.get_bars("SPY", "1Day", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC))
    assert empty.value.argument == "start"
    with pytest.raises(ValidationError) as backwards:
        await source.get_bars("SPY", "1Day", FEB, JAN)
    assert backwards.value.argument == "start"


# ---------------------------------------------------------------- Alpaca over a fake HTTP layer


async def test_alpaca_bars_for_many_symbols_in_one_request_then_from_cache(tmp_path: Path, http: rm.Mocker) -> None:
    http.get(
        BARS_URL,
        json={
            "bars": {"AAPL": [_bar(2, 185.5), _bar(3, 184.25)], "MSFT": [_bar(2, 370.0), _bar(3, 371.5)]},
            "next_page_token": None,
        },
    )
    source = _alpaca(tmp_path)
    got = await source.get_bars_many(["AAPL", "msft"], "1Day", JAN, FEB)
    again = await source.get_bars("AAPL", "1Day", JAN, FEB)
    assert http.call_count == 1
    request = http.request_history[0]
    assert request.qs["symbols"] == ["aapl,msft"]
    assert request.qs["timeframe"] == ["1day"] and request.qs["feed"] == ["iex"]
    assert request.qs["adjustment"] == ["split"]
    assert request.headers["APCA-API-KEY-ID"] == KEY_ID
    assert got["AAPL"].close.tolist() == [185.5, 184.25] and got["MSFT"].open.tolist() == [369.0, 370.5]
    assert got["AAPL"].volume.tolist() == [1002.0, 1003.0]
    assert got["AAPL"].ts_ns[0] == np.datetime64("2024-01-02T05:00:00", "ns").view(np.int64)
    assert np.array_equal(again.close, got["AAPL"].close)


async def test_alpaca_follows_pages(tmp_path: Path, http: rm.Mocker) -> None:
    http.get(
        BARS_URL,
        [
            {"json": {"bars": {"AAPL": [_bar(2, 185.5)]}, "next_page_token": "QUFQTHwyMDI0"}},
            {"json": {"bars": {"AAPL": [_bar(3, 184.25)]}, "next_page_token": None}},
        ],
    )
    bars = await _alpaca(tmp_path).get_bars("AAPL", "1Day", JAN, FEB)
    assert bars.close.tolist() == [185.5, 184.25]
    assert http.request_history[1].qs["page_token"] == ["qufqthwymdi0"]  # requests-mock lower-cases qs


async def test_alpaca_latest_quote_is_the_mid_in_decimal(tmp_path: Path, http: rm.Mocker) -> None:
    http.get(
        QUOTES_URL,
        json={
            "quotes": {
                "AAPL": {
                    "t": "2024-03-06T14:37:12.123456789Z",
                    "ax": "V",
                    "ap": 190.11,
                    "as": 2,
                    "bx": "V",
                    "bp": 189.97,
                    "bs": 1,
                    "c": ["R"],
                    "z": "C",
                }
            }
        },
    )
    quote = await _alpaca(tmp_path).latest_quote("AAPL")
    assert quote.bid == Decimal("189.97") and quote.ask == Decimal("190.11")
    assert quote.price == Decimal("190.04") and quote.source == "alpaca" and quote.symbol == "AAPL"
    assert quote.timestamp.replace(microsecond=0) == datetime(2024, 3, 6, 14, 37, 12, tzinfo=UTC)


async def test_alpaca_errors_are_typed_and_never_carry_the_keys(
    tmp_path: Path, http: rm.Mocker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    source = _alpaca(tmp_path, breaker_fail_max=50)
    http.get(BARS_URL, status_code=401, json={"code": 40110000, "message": "request is not authorized"})
    with pytest.raises(ExternalAPIError) as unauthorised:
        await source.get_bars("AAPL", "1Day", JAN, FEB)
    assert "NT_ALPACA_API_KEY" in unauthorised.value.message and not unauthorised.value.retryable
    assert http.call_count == 1  # not retried

    http.get(BARS_URL, status_code=403, json={"code": 40310000, "message": "subscription does not permit SIP"})
    with pytest.raises(BusinessLogicError) as forbidden:
        await source.get_bars("AAPL", "1Day", JAN, FEB)
    assert "subscription" in forbidden.value.message

    http.get(BARS_URL, status_code=422, json={"code": 42210000, "message": "invalid symbol: AAPL$"})
    with pytest.raises(ValidationError) as invalid:
        await source.get_bars("AAPL", "1Day", JAN, FEB)
    assert invalid.value.argument == "symbol" and "invalid symbol" in invalid.value.message

    http.reset_mock()
    http.get(BARS_URL, status_code=500, json={"code": 50010000, "message": "internal server error"})
    with pytest.raises(ExternalAPIError) as server:
        await source.get_bars("AAPL", "1Day", JAN, FEB)
    assert server.value.status == 500 and server.value.retryable and http.call_count == 3  # NT_RETRY_MAX_ATTEMPTS

    http.reset_mock()
    http.get(
        BARS_URL,
        [
            {"status_code": 429, "headers": {"Retry-After": "0"}, "json": {"code": 42910000, "message": "slow down"}},
            {"json": {"bars": {"AAPL": [_bar(2, 185.5)]}, "next_page_token": None}},
        ],
    )
    assert (await source.get_bars("AAPL", "1Day", JAN, FEB)).close.tolist() == [185.5]
    assert http.call_count == 2  # the rate limit was waited out and retried

    http.get(BARS_URL, exc=requests.ConnectionError("connection refused"))
    with pytest.raises(NetworkError):
        await source.get_bars("AAPL", "1Day", datetime(2023, 1, 1, tzinfo=UTC), datetime(2023, 2, 1, tzinfo=UTC))

    http.get(BARS_URL, json={"bars": {}, "next_page_token": None})
    with pytest.raises(ValidationError) as empty:
        await source.get_bars("AAPL", "1Day", datetime(2022, 1, 1, tzinfo=UTC), datetime(2022, 2, 1, tzinfo=UTC))
    assert empty.value.argument == "symbol" and "no 1Day bars" in empty.value.message

    for error in (unauthorised.value, forbidden.value, invalid.value, server.value, empty.value):
        assert KEY_ID not in str(error.to_dict()) and SECRET not in str(error.to_dict())
    assert KEY_ID not in caplog.text and SECRET not in caplog.text
    assert KEY_ID not in repr(source) and SECRET not in repr(source)


async def test_a_failing_alpaca_opens_its_breaker(tmp_path: Path, http: rm.Mocker) -> None:
    source = _alpaca(tmp_path, breaker_fail_max=2, retry_max_attempts=1)
    http.get(BARS_URL, status_code=503, json={"code": 50300000, "message": "unavailable"})
    for _ in range(2):
        with pytest.raises(ExternalAPIError):
            await source.get_bars("AAPL", "1Day", JAN, FEB)
    with pytest.raises(ServiceUnavailableError) as paused:
        await source.get_bars("AAPL", "1Day", JAN, FEB)
    assert paused.value.context["service"] == "alpaca-data" and http.call_count == 2


def test_cache_ttl_depends_on_timeframe_and_age() -> None:
    now = datetime(2024, 6, 1, 15, tzinfo=UTC)
    assert AlpacaMarketData.ttl_s("1Min", now, now) == 30
    assert AlpacaMarketData.ttl_s("1Day", now, now) == 3600
    assert AlpacaMarketData.ttl_s("1Min", datetime(2024, 5, 1, tzinfo=UTC), now) == CLOSED_RANGE_TTL_S


@pytest.fixture
async def alpaca_stack(storage_settings: Settings) -> AsyncIterator[Services]:
    keys = {"alpaca_api_key": SecretStr(KEY_ID), "alpaca_secret_key": SecretStr(SECRET)}
    settings = storage_settings.model_copy(update=keys)
    services = await Services.start(settings)
    try:
        yield services
    finally:
        await services.close()


async def test_run_backtest_on_alpaca_bars_through_the_mcp_client(alpaca_stack: Services, http: rm.Mocker) -> None:
    closes = [100.0 + 3 * np.sin(i / 3) for i in range(1, 29)]
    bars = [
        {"t": f"2024-02-{d:02d}T05:00:00Z", "o": c, "h": c + 1, "l": c - 1, "c": c, "v": 500, "n": 5, "vw": c}
        for d, c in zip(range(1, 29), closes, strict=True)
    ]
    http.get(BARS_URL, json={"bars": {"SPY": bars}, "next_page_token": None})
    async with Client(build_server(alpaca_stack)) as client:
        result = await client.call_tool(
            "run_backtest",
            {
                "strategy": "sma_crossover",
                "symbol": "SPY",
                "params": {"fast": 2, "slow": 5},
                "start": "2024-02-01",
                "end": "2024-02-29",
            },
        )
    assert not result.is_error, result.content
    data = result.structured_content["data"]
    assert data["source"] == "alpaca" and data["synthetic"] is False and data["bars"] == 28
    assert "iex feed" in data["detail"]
    assert result.structured_content["trade_count"] >= 1
