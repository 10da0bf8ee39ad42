"""HTTP settings and token helpers: refused combinations, derived URLs and allow-lists, scopes, TTLs."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from nt_mcp.config import describe_settings_error
from nt_mcp.server.auth import AuthConfigError, build_verifier, parse_ttl, scopes_from_claims
from tests.conftest import make_settings


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"tls_cert_file": "c.pem"}, "NT_TLS_CERT_FILE"),
        ({"http_rate_limit": "lots"}, "NT_HTTP_RATE_LIMIT"),
        ({"auth_failure_limit": "10 per fortnight"}, "NT_AUTH_FAILURE_LIMIT"),
        ({"metrics_allow_cidrs": "10.0.0.0/8,intranet"}, "NT_METRICS_ALLOW_CIDRS"),
        ({"jwt_jwks_url": "ftp://idp/jwks"}, "NT_JWT_JWKS_URL"),
    ],
)
def test_bad_http_settings_are_named(tmp_path: Path, overrides: dict[str, str], named: str) -> None:
    with pytest.raises(pydantic.ValidationError) as caught:
        make_settings(tmp_path, **overrides)
    line = describe_settings_error(caught.value)
    assert named in line or "NT_TLS_CERT_FILE" in line


def test_canonical_urls_follow_tls_and_public_url(tmp_path: Path) -> None:
    plain = make_settings(tmp_path, port=9000)
    assert plain.resource_url == "http://127.0.0.1:9000/mcp" == plain.token_audience
    tls = make_settings(tmp_path, tls_cert_file="c", tls_key_file="k")
    assert tls.base_url == "https://127.0.0.1:8000"
    public = make_settings(tmp_path, public_url="https://mcp.example.com/", host="0.0.0.0")  # noqa: S104
    assert public.token_audience == "https://mcp.example.com/mcp"
    assert "mcp.example.com" in public.host_allow_list
    assert "https://mcp.example.com" in public.origin_allow_list


def test_verifier_config_is_refused_when_missing_or_mixed(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="refusing to start"):
        build_verifier(make_settings(tmp_path))
    with pytest.raises(AuthConfigError, match="HS256"):
        build_verifier(make_settings(tmp_path, jwt_secret="s" * 32, jwt_algorithms="HS256,RS256"))
    with pytest.raises(AuthConfigError, match="may only list"):
        build_verifier(make_settings(tmp_path, jwt_jwks_url="https://idp/jwks", jwt_algorithms="HS256"))


def test_scopes_come_from_scope_or_scp_and_unknown_ones_are_dropped() -> None:
    assert scopes_from_claims({"scope": "read trade root"}) == ["read", "trade"]
    assert scopes_from_claims({"scp": ["admin", 3, "backtest"]}) == ["admin", "backtest"]
    assert scopes_from_claims({}) == []


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("15m", 900), ("1h", 3600), ("7d", 604800)])
def test_ttl(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["0", "-1h", "1y", "soon"])
def test_bad_ttl(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ttl(text)


@pytest.mark.parametrize(
    "rate", ["300/minute", "10/minute", "1/second", "25/hour", "7/day", "1000000/minute", "0/minute", "5/minutes"]
)
def test_the_plain_rate_fast_path_accepts_only_what_limits_parses(tmp_path: Path, rate: str) -> None:
    """`config._PLAIN_RATE` lets a rate through without importing limits: every rate it lets through
    parses with limits to that many per that unit; the others still go to limits."""
    from limits import parse

    from nt_mcp.config import _PLAIN_RATE

    settings = make_settings(tmp_path, http_rate_limit=rate)  # accepted either way (limits parses each)
    assert settings.http_rate_limit == rate
    if _PLAIN_RATE.fullmatch(rate):
        amount, unit = rate.split("/")
        item = parse(rate)
        assert (item.amount, item.GRANULARITY.name, item.multiples) == (int(amount), unit, 1)
    else:
        assert rate in {"0/minute", "5/minutes"}  # parsed by limits itself
