"""Synthetic bars and file loading."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from nt_mcp.adapters.data.files import load_bars
from nt_mcp.adapters.data.synthetic import generate_bars
from nt_mcp.domain.errors import DomainValueError


def test_synthetic_is_deterministic_and_depends_on_symbol_and_seed() -> None:
    a = generate_bars("AAPL", "2024-01-01", "2024-06-30")
    b = generate_bars("AAPL", "2024-01-01", "2024-06-30")
    np.testing.assert_array_equal(a.close, b.close)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert not np.array_equal(a.close, generate_bars("MSFT", "2024-01-01", "2024-06-30").close)
    assert not np.array_equal(a.close, generate_bars("AAPL", "2024-01-01", "2024-06-30", seed=1).close)


def test_synthetic_daily_bars_are_weekdays_only_and_consistent() -> None:
    bars = generate_bars("X", "2024-01-01", "2024-01-31", "1Day")
    days = bars.timestamps.astype("datetime64[D]")
    weekday = (days.view(np.int64) + 3) % 7
    assert (weekday < 5).all()
    assert len(bars) == 23  # January 2024 has 23 weekdays
    assert (bars.high >= np.maximum(bars.open, bars.close)).all()
    assert (bars.low <= np.minimum(bars.open, bars.close)).all()


def test_synthetic_intraday_spacing() -> None:
    start, end = datetime(2024, 1, 2, tzinfo=UTC), datetime(2024, 1, 2, 23, 59, tzinfo=UTC)
    bars = generate_bars("X", start, end, "5Min")
    assert len(bars) == 288
    assert (np.diff(bars.ts_ns) == 300 * 10**9).all()


def test_synthetic_rejects_unknown_timeframe() -> None:
    with pytest.raises(DomainValueError) as err:
        generate_bars("X", "2024-01-01", "2024-02-01", "2Day")
    assert err.value.argument == "timeframe"


HEADER = "timestamp,open,high,low,close,volume\n"


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def test_csv_with_iso_and_case_insensitive_columns(tmp_path: Path) -> None:
    _write(
        tmp_path / "ABC.csv",
        "Timestamp,OPEN,High,low,Close,Volume\n"
        "2024-01-02T00:00:00Z,1,2,0.5,1.5,100\n"
        "2024-01-03T00:00:00+01:00,1.5,2.5,1,2,200\n"
        "2024-01-04,2,3,1.5,2.5,300\n",
    )
    bars = load_bars(tmp_path, "ABC")
    assert len(bars) == 3
    assert str(bars.timestamps[1]) == "2024-01-02T23:00:00.000000000"
    np.testing.assert_array_equal(bars.close, [1.5, 2.0, 2.5])


def test_csv_epoch_seconds_and_milliseconds_and_range_filter(tmp_path: Path) -> None:
    _write(
        tmp_path / "S.csv",
        "timestamp,open,high,low,close,volume\n1704153600,1,1,1,1,1\n1704240000000,2,2,2,2,1\n1704326400,3,3,3,3,1\n",
    )
    bars = load_bars(tmp_path, "S", start=datetime(2024, 1, 3), end=datetime(2024, 1, 3, 12))
    assert len(bars) == 1 and bars.close[0] == 2.0


def test_missing_file_names_the_symbol(tmp_path: Path) -> None:
    with pytest.raises(DomainValueError) as err:
        load_bars(tmp_path, "NOPE")
    assert err.value.argument == "symbol" and "NOPE.csv" in err.value.message


def test_path_traversal_symbol_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DomainValueError) as err:
        load_bars(tmp_path, "../etc/passwd")
    assert err.value.argument == "symbol"


def test_missing_column_is_named(tmp_path: Path) -> None:
    _write(tmp_path / "A.csv", "timestamp,open,high,low,volume\n2024-01-02,1,1,1,1\n")
    with pytest.raises(DomainValueError) as err:
        load_bars(tmp_path, "A")
    assert err.value.argument == "close" and "A.csv" in err.value.message


@pytest.mark.parametrize(("second", "word"), [("2024-01-01", "out-of-order"), ("2024-01-02", "duplicate")])
def test_unsorted_or_duplicate_timestamps(tmp_path: Path, second: str, word: str) -> None:
    _write(tmp_path / "A.csv", f"{HEADER}2024-01-02,1,1,1,1,1\n{second},1,1,1,1,1\n")
    with pytest.raises(DomainValueError) as err:
        load_bars(tmp_path, "A")
    assert err.value.argument == "timestamp" and word in err.value.message and "row 3" in err.value.message


def test_nan_is_reported_with_column_and_row(tmp_path: Path) -> None:
    _write(tmp_path / "A.csv", f"{HEADER}2024-01-02,1,1,1,1,1\n2024-01-03,1,1,1,,1\n")
    with pytest.raises(DomainValueError) as err:
        load_bars(tmp_path, "A")
    assert err.value.argument == "close" and "row 3" in err.value.message and "A.csv" in err.value.message


def test_parquet_without_pyarrow_says_how_to_fix(tmp_path: Path) -> None:
    if importlib.util.find_spec("pyarrow") is not None:
        pytest.skip("pyarrow is installed; the message for its absence cannot be shown")
    (tmp_path / "P.parquet").write_bytes(b"PAR1")
    with pytest.raises(DomainValueError) as err:
        load_bars(tmp_path, "P")
    assert "pip install pyarrow" in err.value.message


def test_synthetic_prices_do_not_depend_on_the_range_asked_for() -> None:
    short = generate_bars("SPY", "2024-01-01", "2024-03-01")
    long = generate_bars("SPY", "2023-06-01", "2024-06-01")
    overlap = np.isin(long.timestamps, short.timestamps)
    assert overlap.sum() == len(short.close) > 40
    for field in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(long, field)[overlap], getattr(short, field))
    day = generate_bars("SPY", "2024-02-05T00:00", "2024-02-05T23:59", "1Min")
    part = generate_bars("SPY", "2024-02-05T10:00", "2024-02-05T10:30", "1Min")
    assert np.array_equal(day.close[np.isin(day.timestamps, part.timestamps)], part.close)


def test_synthetic_timeframes_agree_with_each_other() -> None:
    daily = generate_bars("QQQ", "2024-02-05", "2024-02-05")
    minutes = generate_bars("QQQ", "2024-02-05T00:00", "2024-02-05T23:59", "1Min")
    hours = generate_bars("QQQ", "2024-02-05T00:00", "2024-02-05T23:00", "1Hour")
    assert len(minutes.close) == 1440 and len(hours.close) == 24
    assert minutes.close[-1] == daily.close[0] == hours.close[-1]  # the day ends where the daily bar closes
    assert minutes.open[0] == daily.open[0] == hours.open[0]
    assert hours.high[3] == minutes.high[180:240].max() and hours.low[3] == minutes.low[180:240].min()
    assert hours.volume[3] == minutes.volume[180:240].sum()


def test_synthetic_price_at_is_the_last_finished_minute() -> None:
    from datetime import UTC, datetime

    from nt_mcp.adapters.data.synthetic import price_at

    minutes = generate_bars("IWM", "2024-02-09T00:00", "2024-02-09T23:59", "1Min")  # a Friday
    price, at = price_at("IWM", datetime(2024, 2, 9, 12, 30, 45, tzinfo=UTC))
    assert price == minutes.close[12 * 60 + 29] and at == datetime(2024, 2, 9, 12, 29, tzinfo=UTC)
    weekend_price, weekend_at = price_at("IWM", datetime(2024, 2, 10, 15, 0, tzinfo=UTC))  # a Saturday
    assert weekend_price == minutes.close[-1] and weekend_at == datetime(2024, 2, 9, 23, 59, tzinfo=UTC)


def test_synthetic_data_starts_at_the_anchor() -> None:
    with pytest.raises(DomainValueError) as error:
        generate_bars("SPY", "1969-12-01", "1970-02-01")
    assert error.value.argument == "start"


@pytest.mark.parametrize(
    ("row", "column"),
    [
        ("2024-01-03,12,11,9,10,1", "open"),
        ("2024-01-03,10,11,9,8.5,1", "close"),
        ("2024-01-03,10,11,9,11.5,1", "close"),
    ],
)
def test_open_or_close_outside_the_bar_is_refused_naming_the_row(tmp_path: Path, row: str, column: str) -> None:
    _write(tmp_path / "A.csv", f"{HEADER}2024-01-02,10,11,9,10,1\n{row}\n2024-01-04,10,11,9,10,1\n")
    with pytest.raises(DomainValueError) as err:
        load_bars(tmp_path, "A")
    assert err.value.argument == column and "A.csv row 3" in err.value.message and "outside" in err.value.message
