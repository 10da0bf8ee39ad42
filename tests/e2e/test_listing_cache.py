"""The cached tool listing (`server.listing_cache`): a stdio server's second start answers tools/list from
the file its first start wrote, byte for byte what a full build answers; a stale, corrupt or unwritable
cache means a full build, never a failure; a call that arrives before the deferred tools are registered
waits for them."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mcp import Client

from nt_mcp.config import Settings
from nt_mcp.server import listing_cache
from nt_mcp.server.app import attach_services, build_server, deferred_server, local_operator_principal
from nt_mcp.tools.services import Services
from tests.cli import run_cli, server_env

INITIALIZE = (
    '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    '"capabilities":{},"clientInfo":{"name":"test","version":"1"}}}\n'
)
LIST = '{"jsonrpc":"2.0","method":"notifications/initialized"}\n{"jsonrpc":"2.0","id":2,"method":"tools/list"}\n'
PING = '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"ping","arguments":{"echo":"hi"}}}\n'


def _session(data: Path, **settings: str) -> tuple[str, str, str, str]:
    """One `nt-mcp serve` over stdio: the raw initialize and tools/list answer lines, the answer to a
    ``ping`` call sent right after the listing, and how the listing was made ("built" or "cached",
    from the server's "serving" log line)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "nt_mcp", "serve"],
        env=server_env(data, **settings),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(INITIALIZE)
    proc.stdin.flush()
    initialized = proc.stdout.readline()
    proc.stdin.write(LIST + PING)
    proc.stdin.flush()
    listing = proc.stdout.readline()
    ping = proc.stdout.readline()
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    serving = [json.loads(line) for line in stderr.splitlines() if '"msg": "serving"' in line]
    return initialized, listing, ping, serving[0]["tool_listing"]


def _cache_files(data: Path) -> list[Path]:
    return sorted((data / "cache").glob("tools-list-*.json"))


def _migrated(tmp_path: Path) -> Path:
    done = run_cli(tmp_path, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    return tmp_path / "data"


def _pong(answer: str) -> dict[str, object]:
    result = json.loads(answer)["result"]
    assert result["isError"] is False, result
    structured: dict[str, object] = result["structuredContent"]
    return structured


def test_the_second_start_answers_from_the_cache_byte_for_byte(tmp_path: Path) -> None:
    data = _migrated(tmp_path)
    init_built, built, ping_built, how_built = _session(data)
    init_cached, cached, ping_cached, how_cached = _session(data)
    assert (how_built, how_cached) == ("built", "cached")
    assert len(_cache_files(data)) == 1
    assert cached == built and init_cached == init_built
    assert len(json.loads(cached)["result"]["tools"]) == 56
    assert _pong(ping_built)["echo"] == _pong(ping_cached)["echo"] == "hi"  # the call waited for the tools
    # scopes filter the cached listing as they filter a built one (the cache holds every tool's scope)
    _, read_only_cached, _, how = _session(data, NT_STDIO_SCOPES="read")
    _, read_only_built, _, _ = _session(tmp_path / "other", NT_STDIO_SCOPES="read")
    assert how == "cached" and read_only_cached == read_only_built
    names = {tool["name"] for tool in json.loads(read_only_cached)["result"]["tools"]}
    assert "server_status" in names and "place_order" not in names


def test_a_stale_cache_is_rebuilt(tmp_path: Path) -> None:
    data = _migrated(tmp_path)
    _, built, _, _ = _session(data)
    [path] = _cache_files(data)
    document = json.loads(path.read_text())
    key = document["key"]
    document["key"] = "0" * 64  # as after an upgrade or an edited tool module
    document["tools"][0]["tool"]["description"] = "stale"
    path.write_text(json.dumps(document))
    _, listing, _, how = _session(data)
    assert how == "built" and listing == built
    assert json.loads(path.read_text())["key"] == key  # rewritten with the current key
    # another toolset selection is another listing, in its own file
    _, narrow, _, how = _session(data, NT_TOOLSETS="status")
    assert how == "built" and len(_cache_files(data)) == 2
    names = {tool["name"] for tool in json.loads(narrow)["result"]["tools"]}
    assert names == {"server_status", "ping", "get_audit_log"}


def test_a_corrupt_or_unwritable_cache_means_a_full_build(tmp_path: Path) -> None:
    data = _migrated(tmp_path)
    _, built, _, _ = _session(data)
    [path] = _cache_files(data)
    path.write_text('{"format": 1, "key": "')  # a torn file
    _, listing, _, how = _session(data)
    assert how == "built" and listing == built
    _, listing, _, how = _session(data)  # the full build rewrote it
    assert how == "cached" and listing == built
    for entry in _cache_files(data):
        entry.unlink()
    (data / "cache").rmdir()
    (data / "cache").write_text("not a directory")  # nothing can be written under it
    for _ in range(2):
        _, listing, ping, how = _session(data)
        assert how == "built" and listing == built and _pong(ping)["echo"] == "hi"


def test_an_unknown_toolset_is_still_a_usage_error(tmp_path: Path) -> None:
    done = run_cli(tmp_path, "serve", NT_TOOLSETS="status,nope")
    assert done.returncode == 2 and "NT_TOOLSETS" in done.stderr and "nope" in done.stderr


def test_the_key_follows_the_sources_and_the_toolsets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "tool.py"
    module.write_text("x = 1\n")
    monkeypatch.setattr(listing_cache, "_source_roots", lambda: [tmp_path])
    key = listing_cache.listing_key("")
    assert listing_cache.listing_key("") == key
    assert listing_cache.listing_key("status") != key
    module.write_text("x = 22\n")  # another size
    assert listing_cache.listing_key("") != key
    key = listing_cache.listing_key("")
    stat = module.stat()
    os.utime(module, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # same size, touched
    assert listing_cache.listing_key("") != key
    key = listing_cache.listing_key("")
    (tmp_path / "new.py").write_text("")
    assert listing_cache.listing_key("") != key


async def _built_listing(services: Services) -> listing_cache.Listing:
    return await build_server(services).built_listing()


async def test_concurrent_writers_leave_one_whole_file(tmp_path: Path, services: Services) -> None:
    listing = await _built_listing(services)
    path = tmp_path / "cache" / "tools-list-x.json"
    errors: list[BaseException] = []

    def write(key: str) -> None:
        try:
            for _ in range(10):
                assert listing_cache.store(path, key, listing)
                loaded = listing_cache.load(path, key)  # the other writer's key: None, never a torn file
                assert loaded is None or loaded.tools == listing.tools
        except BaseException as error:  # reported below
            errors.append(error)

    writers = [threading.Thread(target=write, args=(key,)) for key in ("a", "b", "c")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert errors == []
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    assert json.loads(path.read_text())["key"] in {"a", "b", "c"}


async def test_a_deferred_server_lists_the_cache_and_calls_wait_for_the_tools(
    tmp_path: Path, services: Services
) -> None:
    settings: Settings = services.settings
    listing = await _built_listing(services)
    path = tmp_path / "tools.json"
    assert listing_cache.store(path, "k", listing)
    cached = listing_cache.load(path, "k")
    assert cached is not None and cached.to_json("k") == listing.to_json("k")
    server = deferred_server(cached, local_principal=local_operator_principal(settings))
    registered = asyncio.Event()

    async def register() -> None:
        await asyncio.sleep(0.3)  # a slow start: the call below arrives before the tools exist
        attach_services(server, services)
        registered.set()

    server.start_when_used(register)
    async with Client(build_server(services)) as full:
        expected = (await full.list_tools()).model_dump_json(by_alias=True)
    async with Client(server) as client:
        before = await client.list_tools()
        assert not registered.is_set()
        ping = await client.call_tool("ping", {"echo": "wait"})
        assert registered.is_set()
        after = await client.list_tools()
        templates = await client.list_resource_templates()
    assert before.model_dump_json(by_alias=True) == expected == after.model_dump_json(by_alias=True)
    assert not ping.is_error and ping.structured_content["echo"] == "wait"
    assert templates.resource_templates  # the other handlers wait for the tools too


def _spawn(data: Path) -> subprocess.Popen[str]:
    """`nt-mcp serve` on ``data`` with text pipes on stdin, stdout and stderr."""
    return subprocess.Popen(
        [sys.executable, "-m", "nt_mcp", "serve"],
        env=server_env(data),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_services_that_fail_after_a_cached_handshake_end_the_server(tmp_path: Path) -> None:
    """The deferred start opens the database after the handshake: when that fails (here a database at a
    revision this version does not know), the server exits 1 naming the error, as a full build does
    before answering."""
    data = _migrated(tmp_path)
    _session(data)  # writes the cache
    import sqlite3

    with sqlite3.connect(data / "nt-mcp.sqlite3") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'deadbeef'")
    proc = _spawn(data)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(INITIALIZE + LIST)
    proc.stdin.flush()
    assert '"id":1' in proc.stdout.readline()
    assert '"tools"' in proc.stdout.readline()  # answered from the cache
    proc.wait(timeout=60)  # stdin still open: the failed start ends the server by itself
    stderr = proc.stderr.read() if proc.stderr is not None else ""
    assert proc.returncode == 1
    assert "nt-mcp: CommandError: Can't locate revision identified by 'deadbeef'" in stderr


def test_an_idle_client_still_gets_the_services_started(tmp_path: Path) -> None:
    """A client that initializes and then sends nothing: the deferred start runs anyway (within
    `cli.START_ANYWAY_S`), so the spool is replayed and jobs resume as on a full build."""
    data = _migrated(tmp_path)
    _session(data)  # writes the cache
    proc = _spawn(data)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(INITIALIZE)
    proc.stdin.flush()
    assert '"id":1' in proc.stdout.readline()
    started = False
    give_up = threading.Timer(30, proc.stdin.close)  # then the server exits and the log ends
    give_up.start()
    for line in proc.stderr:  # the log, line by line, until the services say they started
        if '"msg": "services started"' in line:
            started = True
            break
    give_up.cancel()
    if not proc.stdin.closed:
        proc.stdin.close()
    proc.wait(timeout=60)
    assert started and proc.returncode == 0
