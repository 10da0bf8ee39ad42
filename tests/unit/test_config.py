"""Configuration: zero-config defaults, the live-trading gate, and bad settings refused with exit code 2."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli import run_cli
from tests.conftest import make_settings
from tests.migrations import head_revision


def test_zero_configuration_is_paper_sqlite_stdio(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.transport == "stdio"
    assert settings.mode == "paper"
    assert settings.sqlalchemy_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'nt-mcp.sqlite3'}"
    assert settings.local_scopes == {"read", "backtest", "trade"}


@pytest.mark.parametrize("value", ["Live ", "LIVE", "live"])
def test_live_needs_acknowledgement_and_then_says_live(tmp_path: Path, value: str) -> None:
    settings = make_settings(tmp_path, trading_mode=value, live_trading_acknowledged=True)
    assert settings.mode == "live"


@pytest.mark.parametrize("typo", ["lvie", "real", "production", ""])
def test_anything_but_live_is_paper(tmp_path: Path, typo: str) -> None:
    assert make_settings(tmp_path, trading_mode=typo, live_trading_acknowledged=True).mode == "paper"


def test_postgres_url_gets_the_asyncpg_driver(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url="postgresql://u:p@db:5432/nt")
    assert settings.sqlalchemy_url == "postgresql+asyncpg://u:p@db:5432/nt"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"NT_TRANSPORT": "carrier-pigeon"}, "NT_TRANSPORT"),
        ({"NT_DATABASE_URL": "mysql://root@localhost/nt"}, "NT_DATABASE_URL"),
        ({"NT_DATABASE_URL": "postgresql://"}, "NT_DATABASE_URL"),
        ({"NT_REDIS_URL": "localhost:6379"}, "NT_REDIS_URL"),
        ({"NT_JWT_SECRET": "too-short"}, "NT_JWT_SECRET"),
        ({"NT_TRADING_MODE": "live"}, "NT_LIVE_TRADING_ACKNOWLEDGED"),
        ({"NT_PORT": "70000"}, "NT_PORT"),
        ({"NT_STDIO_SCOPES": "read,superuser"}, "NT_STDIO_SCOPES"),
    ],
)
def test_bad_configuration_exits_2_with_one_clear_line(tmp_path: Path, env: dict[str, str], named: str) -> None:
    result = run_cli(tmp_path, "serve", **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_short_jwt_secret_is_not_echoed(tmp_path: Path) -> None:
    result = run_cli(tmp_path, "serve", NT_JWT_SECRET="hunter2-secret")
    assert result.returncode == 2
    assert "hunter2" not in result.stderr


def test_version_and_db_upgrade(tmp_path: Path) -> None:
    version = run_cli(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("nt-mcp ")
    upgrade = run_cli(tmp_path, "db", "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    assert f"sqlite at revision {head_revision()}" in upgrade.stdout
    assert (tmp_path / "data" / "nt-mcp.sqlite3").is_file()
