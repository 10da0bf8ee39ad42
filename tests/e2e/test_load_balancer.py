"""Two `nt-mcp serve --transport http` replicas in stateless mode behind a real HAProxy (Debian's
package), on one PostgreSQL and one Redis, all on loopback; a real MCP client talks through the
balancer with JWT bearer tokens, over HTTPS end to end (client -> HAProxy -> replica, each hop
verified against the test's self-signed certificate). HAProxy runs `deploy/haproxy.cfg` itself (addresses from the
environment), so the example config is the tested one.

What a user of the balanced service would notice, each asserted:

- 200 mixed calls (status, market data, backtests, paper orders, jobs) through one client session,
  round-robin over both replicas, none an error; HAProxy's own statistics show both replicas served.
- A long call's progress notifications reach the caller on its POST's SSE stream (stateless mode).
- Per-principal rate limits hold across replicas: with a budget of 45 per minute, 60 calls through
  the balancer are 45 allowed and 15 refused RATE_LIMITED, though both replicas served them.
- An idempotency key used on replica A and retried on replica B (addressed directly) is one order.
- A job started through replica A is read through replica B (`get_job`) until it has its result.
- SIGTERM to one replica mid-run: the client's next calls all succeed (HAProxy redispatches the
  refused connection, then the /health/ready check marks the replica DOWN), and the replica exits 0.

Without haproxy installed the test skips, unless REQUIRE_PEER_CLIENTS is set (scripts/test sets it
and installs haproxy), and then it fails."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import ssl
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from nt_mcp.server.certs import write_dev_pair
from tests.http_support import SECRET, http_settings, make_token, mcp_transport
from tests.lb_support import Replica, haproxy, served, start_replica, stop, wait_ready, wait_status
from tests.results import error_of
from tests.servers import free_port

RATE_BUDGET = 45  # NT_RATE_LIMIT_PER_MINUTE of both replicas: units per principal and tool per minute
SCOPES = "read backtest trade"

pytestmark = pytest.mark.slow


def haproxy_binary() -> str:
    binary = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None)
    if binary is None:
        if os.environ.get("REQUIRE_PEER_CLIENTS"):
            pytest.fail("haproxy is not installed (Debian package haproxy; scripts/test installs it)")
        pytest.skip("haproxy is not installed (Debian package haproxy; scripts/test installs it)")
    return binary


@dataclass
class Stack:
    lb_url: str
    stats_url: str
    replicas: list[Replica]
    token_for: Any
    trust: ssl.SSLContext

    def client(self, subject: str, base_url: str | None = None) -> Client:
        url = f"{base_url or self.lb_url}/mcp"
        return Client(mcp_transport(url, self.token_for(subject), verify=self.trust), read_timeout_seconds=60)


@contextlib.contextmanager
def balanced_stack(tmp_path: Path, pg_url: str, redis_url: str) -> Iterator[Stack]:
    binary = haproxy_binary()
    lb_port = free_port()
    lb_url = f"https://127.0.0.1:{lb_port}"
    cert, key = write_dev_pair(tmp_path / "certs")  # self-signed for 127.0.0.1: clients and HAProxy trust it
    pem = tmp_path / "certs" / "haproxy.pem"  # HAProxy wants the certificate and its key in one file
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    trust = ssl.create_default_context(cafile=str(cert))
    env = {
        "NT_TLS_CERT_FILE": str(cert),
        "NT_TLS_KEY_FILE": str(key),
        "NT_DATABASE_URL": pg_url,
        "NT_REDIS_URL": redis_url,
        "NT_JWT_SECRET": SECRET,
        "NT_PUBLIC_URL": lb_url,  # the tokens' audience: the balanced URL, whichever replica answers
        "NT_HTTP_STATELESS": "true",
        "NT_RATE_LIMIT_PER_MINUTE": str(RATE_BUDGET),
        "NT_HTTP_RATE_LIMIT": "100000/minute",  # per client address; on loopback client and HAProxy are one
        "NT_FORWARDED_ALLOW_IPS": "127.0.0.1",  # the client address from HAProxy's X-Forwarded-For
        "NT_SHUTDOWN_GRACE_S": "10",
    }
    replicas = [start_replica(name, tmp_path, env) for name in ("replica1", "replica2")]  # at once
    try:
        for replica in replicas:
            wait_ready(replica, verify=trust)
        first, second = (r.address for r in replicas)
        tls = {"NT_LB_TLS_PEM": str(pem), "NT_REPLICA_CA": str(cert)}
        with haproxy(binary, first, second, tmp_path / "haproxy.log", lb_port, tls) as balancer:
            settings = http_settings(tmp_path, public_url=lb_url)

            def token_for(subject: str) -> str:
                return make_token(settings, sub=subject, scope=SCOPES)

            yield Stack(balancer.url, balancer.stats_url, replicas, token_for, trust)
    finally:
        for replica in replicas:
            stop(replica.process)


def _ok(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return dict(result.structured_content)


SWEEP: dict[str, Any] = {
    "strategy": "sma_crossover",
    "symbol": "AAPL",
    "param_grid": {"fast": [5, 10], "slow": [30, 60]},
}


def mixed_call(i: int) -> tuple[str, dict[str, Any]]:
    """The i-th of the mixed calls: each tool 20 calls (at most 40 units, under the rate budget)."""
    calls: list[tuple[str, dict[str, Any]]] = [
        ("server_status", {}),
        ("ping", {"echo": f"call-{i}"}),
        ("get_quote", {"symbol": "AAPL"}),
        ("get_bars", {"symbol": "MSFT", "timeframe": "1Day", "limit": 20}),
        ("get_account", {}),
        ("place_order", {"symbol": "AAPL", "side": "buy", "qty": 1, "idempotency_key": f"mixed-{i}"}),
        ("get_orders", {"status": "all", "limit": 5}),
        ("run_backtest", {"strategy": "sma_crossover", "symbol": "SPY"}),  # 2 units a call
        ("list_jobs", {}),
        ("list_backtests", {}),
    ]
    return calls[i % len(calls)]


async def _until_done(client: Client, job_id: str) -> dict[str, Any]:
    for _ in range(600):
        body = _ok(await client.call_tool("get_job", {"job_id": job_id}))
        if body["state"] in ("succeeded", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.1)
    raise AssertionError("the job did not finish")


async def test_two_replicas_behind_haproxy(tmp_path: Path, pg_url: str, redis_url: str) -> None:
    with balanced_stack(tmp_path, pg_url, redis_url) as stack:
        replica_a, replica_b = stack.replicas
        report: list[str] = []
        t0 = time.monotonic()

        # (a) 200 mixed calls through the balancer, one client session, none an error
        before = served(stack.stats_url)
        async with stack.client("alice") as client:
            names = []
            for i in range(200):
                name, arguments = mixed_call(i)
                result = await client.call_tool(name, arguments)
                assert not result.is_error, (i, name, result.content)
                names.append(name)
            orders = _ok(await client.call_tool("get_orders", {"status": "all", "limit": 100}))
            job = _ok(await client.call_tool("start_job", {"kind": "optimize_strategy", "arguments": SWEEP}))
            assert (await _until_done(client, job["job_id"]))["state"] == "succeeded"
        after = served(stack.stats_url)
        report.append(f"phase (a) took {time.monotonic() - t0:.1f} s")
        per_replica = {name: after[name] - before[name] for name in after}
        report.append(f"200 mixed calls + session requests through HAProxy: served per replica {per_replica}")
        assert orders["count"] == names.count("place_order") == 20  # every order once, whichever replica
        # round-robin: each replica took about half of the requests (initialize, the calls, the job polls)
        assert min(per_replica.values()) >= 0.4 * sum(per_replica.values()), per_replica

        # progress notifications of a long call reach the caller on its POST's stream
        progress: list[tuple[float, float | None, str | None]] = []

        async def on_progress(done: float, total: float | None, message: str | None) -> None:
            progress.append((done, total, message))

        async with stack.client("paula") as client:
            grid = {"fast": [3, 5, 8, 10, 12, 15], "slow": [20, 30, 40, 50, 60]}
            swept = await client.call_tool(
                "optimize_strategy", {**SWEEP, "param_grid": grid}, progress_callback=on_progress
            )
        assert not swept.is_error, swept.content
        report.append(f"optimize_strategy through HAProxy: {len(progress)} progress notifications, last {progress[-1]}")
        assert len(progress) >= 2 and progress[-1][0] == progress[-1][1] == 30

        # (b) one principal's rate budget is shared by both replicas (Redis)
        before = served(stack.stats_url)
        async with stack.client("bob") as client:
            results = [await client.call_tool("ping", {"echo": str(i)}) for i in range(RATE_BUDGET + 15)]
        after = served(stack.stats_url)
        allowed = sum(1 for r in results if not r.is_error)
        refused = {error_of(r)["code"] for r in results if r.is_error}
        split = {name: after[name] - before[name] for name in after}
        report.append(f"{RATE_BUDGET + 15} pings at a budget of {RATE_BUDGET}: {allowed} allowed over {split}")
        assert allowed == RATE_BUDGET and refused == {"RATE_LIMITED"}
        assert min(split.values()) >= 15, split  # both replicas counted against the one budget

        # (c) an idempotency key used on replica A and retried on replica B: one order
        order = {"symbol": "MSFT", "side": "buy", "qty": 2, "idempotency_key": "retry-on-the-other-replica"}
        async with stack.client("carol", replica_a.url) as on_a, stack.client("carol", replica_b.url) as on_b:
            first = _ok(await on_a.call_tool("place_order", order))
            retried = _ok(await on_b.call_tool("place_order", order))
            carol_orders = _ok(await on_b.call_tool("get_orders", {"status": "all"}))
        assert not first["replayed"] and retried["replayed"]
        assert retried["order"]["id"] == first["order"]["id"] and carol_orders["count"] == 1

        # (e) a job started through replica A is read through replica B
        async with stack.client("dave", replica_a.url) as on_a, stack.client("dave", replica_b.url) as on_b:
            started = _ok(await on_a.call_tool("start_job", {"kind": "optimize_strategy", "arguments": SWEEP}))
            finished = await _until_done(on_b, started["job_id"])
            listed = _ok(await on_b.call_tool("list_jobs", {}))
        assert finished["state"] == "succeeded" and finished["result"]["top"][0]["params"], finished
        assert [j["job_id"] for j in listed["jobs"]] == [started["job_id"]]

        # (d) SIGTERM to replica A mid-run: the client's next calls succeed on replica B
        async with stack.client("erin") as client:
            for _ in range(10):
                _ok(await client.call_tool("get_quote", {"symbol": "AAPL"}))
            replica_a.process.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            before = served(stack.stats_url)
            for i in range(20):
                result = await client.call_tool("ping", {"echo": f"after-{i}"})
                assert not result.is_error, (i, result.content)
            down_after = wait_status(stack.stats_url, "replica1", "DOWN")
            after = served(stack.stats_url)
            report.append(
                f"SIGTERM replica1: 20 next calls ok, served {dict((n, after[n] - before[n]) for n in after)}; "
                f"HAProxy marked it DOWN {time.monotonic() - stopped_at - down_after:.1f}+{down_after:.1f} s after"
            )
            # replica1 refuses new MCP requests from its signal handler on (503, then connection refused),
            # and HAProxy retries them on replica2. Before that, uvicorn noticed the signal only at its next
            # 0.1 s tick and replica1 went on serving: 2 to 6 of these 20 calls. One is allowed for a
            # signal handled a moment late (delivered to another thread than the event loop's).
            assert after["replica2"] - before["replica2"] >= 19, (before, after)
            for i in range(5):  # and with replica1 DOWN, nothing is sent to it
                _ok(await client.call_tool("ping", {"echo": f"down-{i}"}))
            final = served(stack.stats_url)
            assert final["replica1"] == after["replica1"] and final["replica2"] >= after["replica2"] + 5
        assert replica_a.process.wait(timeout=20) == 0
        sys.stderr.write("\n" + "\n".join(report) + "\n")
