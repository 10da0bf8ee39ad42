"""deploy/: the compose file wires what the README says (two stateless replicas of the one image, each
with its own data volume, on one PostgreSQL and Redis, behind HAProxy running deploy/haproxy.cfg with
the replicas' service names), and the HAProxy file reads every address from the environment variables
the compose file and the load-balancer test set. (The e2e test runs haproxy.cfg itself.)"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_compose_runs_two_stateless_replicas_of_the_one_image_behind_haproxy() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "replica1", "replica2", "haproxy"}
    replicas = [services["replica1"], services["replica2"]]
    for replica in replicas:
        assert (DEPLOY / replica["build"]["context"] / replica["build"]["dockerfile"]).resolve() == (
            DEPLOY.parent / "Dockerfile"
        )
        env = replica["environment"]
        assert env["NT_HTTP_STATELESS"] == "true"
        assert env["NT_DATABASE_URL"].startswith("postgresql+asyncpg://") and "@postgres:" in env["NT_DATABASE_URL"]
        assert env["NT_REDIS_URL"].startswith("redis://redis:")
    volumes = [replica["volumes"][0].split(":")[0] for replica in replicas]
    assert len(set(volumes)) == 2  # each replica its own NT_DATA_HOME (the spool is local to a replica)
    balancer = services["haproxy"]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in balancer["volumes"]
    assert balancer["environment"]["NT_REPLICA_1"] == "replica1:8000"
    assert balancer["environment"]["NT_REPLICA_2"] == "replica2:8000"


def test_haproxy_config_reads_its_addresses_from_the_environment_and_checks_readiness() -> None:
    text = (DEPLOY / "haproxy.cfg").read_text()
    assert set(re.findall(r"\$\{(NT_[A-Z0-9_]+)-", text)) == {
        "NT_LB_BIND",
        "NT_LB_STATS_BIND",
        "NT_REPLICA_1",
        "NT_REPLICA_2",
    }
    assert "http-check send meth GET uri /health/ready" in text
    assert re.search(r"^\s*balance roundrobin$", text, re.MULTILINE)
