"""Durability: outages and hostile content never stall the spool, never drop an audit row, and the
database's own failures are classified by SQLSTATE and exception class (never by message text).

Real PostgreSQL (stopped, or held in a smart shutdown so it answers 57P03) and SQLite; every test
states the numbers it expects."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from mcp import Client

from nt_mcp.errors import DatabaseError
from nt_mcp.infra.schema import audit_log, orders
from nt_mcp.infra.spool import Spool
from nt_mcp.infra.storable import restore
from nt_mcp.server.app import build_server
from nt_mcp.tools.services import Services
from tests.cli import run_cli
from tests.conftest import create_database, make_settings
from tests.integration.test_resilience import eventually
from tests.results import error_of
from tests.servers import PostgresServer


def _audit_row(correlation_id: str, **values: Any) -> dict[str, Any]:
    return {
        "ts": "2026-11-22T00:00:01+00:00",
        "principal": "p",
        "tool": "ping",
        "outcome": "ok",
        "duration_ms": 1.0,
        "correlation_id": correlation_id,
        "arguments": None,
    } | values


async def _audit_rows(services: Services) -> list[dict[str, Any]]:
    async with services.db.connect() as conn:
        rows = (await conn.execute(sa.select(audit_log).order_by(audit_log.c.id))).mappings().all()
    return [dict(r) for r in rows]


# -- the database's failures, by SQLSTATE -------------------------------------------------------------


async def test_postgresql_shutting_down_57P03_is_a_retryable_database_error(
    own_postgres: PostgresServer, tmp_path: Path
) -> None:
    url = await create_database(own_postgres.admin_url)
    settings = make_settings(
        tmp_path, database_url=url, db_connect_retries=2, spool_replay_interval_s=0.2, rate_limit_per_minute=10_000
    )
    services = await Services.start(settings)
    async with Client(build_server(services)) as client:
        assert not (await client.call_tool("ping", {"echo": "before"})).is_error
        await services.jobs.stop()  # its polling would open a pooled session the smart shutdown then waits on
        await services.audit.flush()  # so would the ping's batched audit row, were its write in flight at dispose
        holder = await asyncpg.connect(own_postgres.admin_url)  # one session keeps the server "shutting down"
        await services.db.engine.dispose()  # pooled sessions would go on working: make the server take new ones
        own_postgres.begin_smart_shutdown()
        try:
            with pytest.raises(DatabaseError):
                await services.db.transaction(lambda conn: conn.execute(sa.text("SELECT 1")))
            status = await client.call_tool("server_status", {})
            trail = await client.call_tool("get_audit_log", {})
            during = await client.call_tool("ping", {"echo": "during"})
            await services.audit.flush()  # read-only calls' rows are batched off the reply path
            spooled = services.spool.count()
        finally:
            await holder.close()
        own_postgres.wait_stopped()
        own_postgres.resume()
        await eventually(lambda: services.spool.count() == 0, timeout_s=15)
        rows = await _audit_rows(services)
    await services.close()
    assert not status.is_error and status.structured_content["storage"]["healthy"] is False
    error = error_of(trail)
    assert (error["code"], error["retryable"], error["retry_after_s"]) == ("DATABASE_ERROR", True, 2.0)
    assert not during.is_error
    assert spooled >= 1  # the audit rows of server_status, get_audit_log and ping waited on disk (batched)
    assert [r["tool"] for r in rows] == ["ping", "server_status", "get_audit_log", "ping"]
    assert rows[-1]["arguments"] == {"echo": "during"}


# -- the spool ------------------------------------------------------------------------------------------

# What each backend refuses for its content: PostgreSQL a NUL in text (SQLSTATE 22021),
# SQLite (through Python's sqlite3) a lone surrogate, which is not UTF-8.
REFUSED = {"postgresql": "a\x00b", "sqlite": "a\ud886b"}


async def test_a_write_refused_for_its_content_is_dead_lettered_at_once_and_later_writes_replay(
    services: Services, tmp_path: Path
) -> None:
    refused = REFUSED[services.db.backend]
    services.spool.append("insert", "audit_log", _audit_row("bad", principal=refused))
    services.spool.append("insert", "audit_log", _audit_row("good"))
    report = await services.replayer.replay_once()
    letters = await services.replayer.dead_letters()
    rows = await _audit_rows(services)
    env = {"NT_DATABASE_URL": services.settings.database_url} if services.settings.database_url else {}
    listed = run_cli(tmp_path, "dlq", "list", **env)
    assert (report.replayed, report.dead_lettered, report.remaining) == (1, 1, 0)
    assert [r["correlation_id"] for r in rows] == ["good"]
    assert len(letters) == 1 and letters[0]["attempts"] == 1  # at once: retrying cannot help
    assert letters[0]["payload"]["values"]["principal"] == refused  # kept exactly, as ASCII JSON text
    if services.db.backend == "postgresql":
        assert "SQLSTATE 22021" in letters[0]["error"]
    assert listed.returncode == 0, listed.stderr
    lines = [json.loads(line) for line in listed.stdout.splitlines() if line.startswith("{")]
    assert [(e["where"], e["kind"], e["payload"]["values"]["principal"]) for e in lines] == [
        ("dead_letters", "insert:audit_log", refused)
    ]


async def test_order_is_kept_per_row_not_across_unrelated_rows(services: Services, tmp_path: Path) -> None:
    services.replayer.max_attempts = 2
    now = "2026-11-22T00:00:00+00:00"
    order = {
        "id": "o1", "client_order_id": "c1", "principal": "p", "broker": "paper", "mode": "paper",
        "symbol": "AAPL", "side": "buy", "order_type": "market", "time_in_force": "day", "status": "new",
        "created_at": now, "updated_at": now,
    }  # fmt: skip
    await services.writer.insert("orders", order)
    # c1's first update can never apply as written (no such column); its second must wait behind it
    services.spool.append("update", "orders", {"no_such_column": 1}, key={"client_order_id": "c1"})
    services.spool.append("update", "orders", {"status": "filled"}, key={"client_order_id": "c1"})
    services.spool.append("insert", "audit_log", _audit_row("independent"))

    async def status() -> str:
        async with services.db.connect() as conn:
            return str((await conn.execute(sa.select(orders.c.status))).scalar_one())

    first = await services.replayer.replay_once()
    after_first = await status()
    second = await services.replayer.replay_once()
    after_second = await status()
    assert (first.replayed, first.dead_lettered, first.remaining) == (1, 0, 2)  # the audit row went on
    assert after_first == "new"  # c1's later update waited behind its failing one
    assert (second.replayed, second.dead_lettered, second.remaining) == (1, 1, 0)
    assert after_second == "filled"
    assert [r["correlation_id"] for r in await _audit_rows(services)] == ["independent"]


def test_listing_the_spool_tolerates_a_replay_deleting_files(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    for i in range(400):
        spool.append("insert", "audit_log", _audit_row(f"c{i}"))
    failures: list[BaseException] = []

    def replay() -> None:
        for entry in spool.pending():
            spool.ack(entry)

    listings = 0
    worker = threading.Thread(target=replay)
    worker.start()
    while worker.is_alive():
        try:
            spool.pending()
        except BaseException as error:  # before: FileNotFoundError on a file listed, then acknowledged
            failures.append(error)
        listings += 1
    worker.join()
    assert failures == []
    assert listings > 1 and spool.pending() == []


def test_an_unreadable_spool_file_is_moved_aside_not_fatal(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.append("insert", "audit_log", _audit_row("ok"))
    (spool.directory / "00000000000000000001-broken.json").write_text("{not json")
    entries = spool.pending()
    assert [e.values["correlation_id"] for e in entries] == ["ok"]
    assert [p.name for p in spool.unreadable()] == ["00000000000000000001-broken.json"]


# -- the audit trail --------------------------------------------------------------------------------------


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels):
        value = {"a": value}
    return value


HOSTILE_CALLS: list[tuple[str, dict[str, Any]]] = [
    ("ping", {"echo": "a\x00b"}),
    ("ping", {"echo": "x\ud886y"}),
    ("ping", {"echo": "nt-escaped:looks like the marker"}),
    ("ping", {"echo": "é 中 🙂 \\u0000"}),
    ("ping", {"e\x00cho": "key with NUL"}),
    ("get_audit_log", {"tool_name": "ping\x00"}),
    ("get_backtest", {"backtest_id": "\ud800"}),
    ("get_order", {"order_id": "'; DROP TABLE orders; --\x00"}),
    ("ping", {"echo": "x" * 1_000_000}),
    ("optimize_strategy", {"strategy": "sma_crossover", "symbol": "SPY", "param_grid": _deep(200)}),
]


async def test_every_call_leaves_an_audit_row_whatever_its_arguments(services: Services) -> None:
    async with Client(build_server(services)) as client:
        results = [await client.call_tool(tool, arguments) for tool, arguments in HOSTILE_CALLS]
    rows = await services.audit.recent("local-operator", 100)
    rows.reverse()  # oldest first, as called
    assert [r.tool for r in rows] == [tool for tool, _ in HOSTILE_CALLS]
    codes = [None if not r.is_error else error_of(r)["code"] for r in results]
    assert codes == [
        "VALIDATION_ERROR", "VALIDATION_ERROR", None, None, "VALIDATION_ERROR", "VALIDATION_ERROR",
        "VALIDATION_ERROR", "VALIDATION_ERROR", "VALIDATION_ERROR", "VALIDATION_ERROR",
    ]  # fmt: skip
    assert [r.outcome for r in rows] == [c or "ok" for c in codes]
    for (_, arguments), row in list(zip(HOSTILE_CALLS, rows, strict=True))[:8]:
        assert restore(row.arguments) == arguments  # lossless: the escaped form restores exactly
    assert rows[0].arguments == {"echo": "nt-escaped:a\\u0000b"}  # the documented escaped form
    huge = rows[8].arguments
    assert huge is not None and huge["echo"].startswith("x" * 4096) and "[1000000 chars, sha256 " in huge["echo"]
    assert "nested deeper than 32 levels" in json.dumps(rows[9].arguments)
