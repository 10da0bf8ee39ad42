"""Shared fixtures: real PostgreSQL and Redis (throwaway servers or TEST_DATABASE_URL / TEST_REDIS_URL),
a fresh database per fixture use, migrated storage on both backends, and a running Services stack."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis
from sqlalchemy.engine import make_url

from nt_mcp.config import Settings
from nt_mcp.infra import migrate
from nt_mcp.infra.db import Database
from nt_mcp.tools.services import Services
from tests.servers import PostgresServer, RedisServer


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A PostgreSQL URL with the right to create databases."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured:
        yield configured.replace("postgresql+asyncpg://", "postgresql://")
        return
    server = PostgresServer.start()
    try:
        yield server.admin_url
    finally:
        server.stop()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of the test's own, which the test may stop and restart (an outage)."""
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    configured = os.environ.get("TEST_REDIS_URL")
    if configured:
        yield configured
        return
    server = RedisServer.start()
    try:
        yield server.url
    finally:
        server.stop()


async def create_database(admin_url: str) -> str:
    """Create a fresh, empty database on the server of ``admin_url``; return its URL."""
    name = f"nt_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return str(make_url(admin_url).set(database=name).render_as_string(hide_password=False))


async def drop_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
async def pg_url(pg_admin_url: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    url = await create_database(pg_admin_url)
    try:
        yield url
    finally:
        await drop_database(pg_admin_url, url)


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    """The test Redis, flushed before and after use."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    try:
        yield redis_server_url
    finally:
        client.flushdb()
        client.close()


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings isolated from the developer's environment and .env file."""
    values: dict[str, Any] = {
        "data_home": tmp_path / "data",
        "database_url": None,
        "redis_url": None,
    } | overrides
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture(params=["sqlite", "postgresql"])
async def storage_settings(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings for each storage backend: the embedded SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield make_settings(tmp_path)
        return
    admin_url = request.getfixturevalue("pg_admin_url")
    url = await create_database(admin_url)
    try:
        yield make_settings(tmp_path, database_url=url)
    finally:
        await drop_database(admin_url, url)


@pytest.fixture
async def db(storage_settings: Settings) -> AsyncIterator[Database]:
    """A migrated database on each backend."""
    database = Database(storage_settings)
    await migrate.upgrade(database)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def services(storage_settings: Settings) -> AsyncIterator[Services]:
    """The full service stack (storage migrated on start, in-process cache and limits), on each backend."""
    stack = await Services.start(storage_settings)
    try:
        yield stack
    finally:
        await stack.close()
