"""Broker settings: Alpaca without its keys refuses to start, naming the settings, exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import run_cli


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"NT_BROKER": "alpaca"}, "NT_ALPACA_API_KEY and NT_ALPACA_SECRET_KEY"),
        ({"NT_BROKER": "alpaca", "NT_ALPACA_API_KEY": "PK123"}, "NT_ALPACA_SECRET_KEY"),
        ({"NT_MARKET_DATA_SOURCE": "alpaca", "NT_ALPACA_SECRET_KEY": "s"}, "NT_ALPACA_API_KEY"),
    ],
)
def test_alpaca_without_keys_exits_2_naming_them(tmp_path: Path, env: dict[str, str], named: str) -> None:
    result = run_cli(tmp_path, "serve", **env)
    assert result.returncode == 2
    assert f"needs {named}" in result.stderr and "Traceback" not in result.stderr
    assert "PK123" not in result.stderr
