"""The idempotency helpers: the request fingerprint, naming the differing field, claims and waiting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from nt_mcp.errors import ValidationError
from nt_mcp.services.idempotency import Backoff, Claims, check_same_request, fingerprint


def test_the_fingerprint_ignores_key_order_but_not_values() -> None:
    assert fingerprint({"a": 1, "b": "2"}) == fingerprint({"b": "2", "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2}) and len(fingerprint({})) == 64


def test_the_first_differing_field_is_named_in_a_short_message() -> None:
    check_same_request({"symbol": "AAPL", "qty": "1"}, {"symbol": "AAPL", "qty": "1"}, "order")
    check_same_request(None, {"qty": "1"}, "order")  # nothing recorded: nothing to compare
    with pytest.raises(ValidationError) as reused:
        check_same_request({"symbol": "AAPL", "qty": "1"}, {"symbol": "AAPL", "qty": "9" * 500}, "order")
    error = reused.value
    assert error.code == "IDEMPOTENCY_KEY_REUSED" and not error.retryable
    assert error.context == {"argument": "idempotency_key", "field": "qty"} and len(error.message) < 250


def test_a_claim_is_abandoned_when_its_owner_is_gone() -> None:
    claims, other = Claims(lease_s=60), Claims(lease_s=60)
    now = datetime.now(UTC)
    token = claims.new_token()
    with claims.hold(token):
        assert not claims.abandoned(token, now, now)  # held by a running task here
    assert claims.abandoned(token, now, now)  # this process's call is over
    assert not claims.abandoned(other.new_token(), now, now)  # another process, within its lease
    assert claims.abandoned(other.new_token(), now - timedelta(seconds=61), now)
    assert claims.abandoned(None, None, now)


def test_backoff_doubles_to_a_cap_and_ends_at_the_timeout() -> None:
    backoff = Backoff(timeout_s=10)
    assert [backoff.next_delay() for _ in range(6)] == [0.02, 0.04, 0.08, 0.16, 0.25, 0.25]
    assert Backoff(timeout_s=0).next_delay() is None
