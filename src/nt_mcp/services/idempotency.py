"""Idempotency keys, like Stripe's: one key is one request, carried out once, whoever calls.

The journal row (an order in ``orders``, a run in ``strategy_runs``) is written *first*; its unique
key is the lock. A call whose insert hits the unique violation did not win: it reads the row and

- refuses with ``IDEMPOTENCY_KEY_REUSED`` (not retryable, naming the first differing field) when the
  row was made for a different request: its ``request_fingerprint`` (sha256 of the canonical
  request, `fingerprint`) differs, whether the first request is still open or long settled;
- returns the row's result (``replayed=true``) once it is settled;
- otherwise waits for the call that holds the row (``claimed_by``) to settle it, polling, up to
  ``NT_IDEMPOTENCY_WAIT_S``; then answers ``IDEMPOTENCY_KEY_IN_USE`` (retryable): it never sends
  a second time.

A claim is abandoned, and may be taken over by one compare-and-set update, when its owner is gone:
the claim is this process's and no task here holds it any more (its call ended with the outcome
unknown, e.g. during a database outage), or the claim is older than the lease (another process
that stopped). The process is told apart by `Claims.instance`, a random id per process.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from nt_mcp.errors import BusinessLogicError, ValidationError

KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
KEY_IN_USE = "IDEMPOTENCY_KEY_IN_USE"


def fingerprint(request: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``request`` (keys sorted, no whitespace)."""
    canonical = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:40] + "…"


def check_same_request(recorded: dict[str, Any] | None, requested: dict[str, Any], what: str) -> None:
    """Raise ``IDEMPOTENCY_KEY_REUSED`` naming the first field where ``requested`` differs from the
    request the key was first used for (fields in ``requested``'s order, then the recorded ones)."""
    if recorded is None:
        return
    for name in [*requested, *(k for k in recorded if k not in requested)]:
        if recorded.get(name) != requested.get(name):
            raise ValidationError(
                f"This idempotency_key was already used for a different {what}: {name} was "
                f"{_show(recorded.get(name))}, now {_show(requested.get(name))}. Use a new key for a new {what}.",
                argument="idempotency_key",
                code=KEY_REUSED,
                context={"field": name},
            )


def in_use_error(what: str, waited_s: float) -> BusinessLogicError:
    return BusinessLogicError(
        f"Another call with this idempotency_key is still carrying out the {what} (waited {waited_s:.0f} s). "
        "Call again with the same key to get its result; it is never carried out twice.",
        code=KEY_IN_USE,
        retryable=True,
        retry_after_s=1.0,
    )


class Claims:
    """The claims this process holds now, and the rule for when another claim is abandoned."""

    def __init__(self, lease_s: float) -> None:
        self.instance = uuid.uuid4().hex[:16]
        self.lease = timedelta(seconds=lease_s)
        self._held: set[str] = set()

    def new_token(self) -> str:
        """A claim id: ``<process instance>:<random>`` (at most 64 characters)."""
        return f"{self.instance}:{uuid.uuid4().hex[:16]}"

    @contextmanager
    def hold(self, token: str) -> Iterator[str]:
        """Mark ``token`` as held by a running task of this process for the block's duration."""
        self._held.add(token)
        try:
            yield token
        finally:
            self._held.discard(token)

    def abandoned(self, claimed_by: str | None, claimed_at: datetime | None, now: datetime) -> bool:
        if claimed_by is None:
            return True
        if claimed_by.startswith(self.instance + ":"):
            return claimed_by not in self._held
        return claimed_at is None or claimed_at < now - self.lease


class Backoff:
    """Polling intervals for a waiter: 20 ms doubling up to 250 ms, until ``timeout_s`` has passed."""

    def __init__(self, timeout_s: float) -> None:
        self.started = time.monotonic()
        self.timeout_s = timeout_s
        self.delay = 0.02

    @property
    def waited_s(self) -> float:
        return time.monotonic() - self.started

    def next_delay(self) -> float | None:
        """Seconds to sleep before looking again, or None when the wait is over."""
        if self.waited_s >= self.timeout_s:
            return None
        delay, self.delay = self.delay, min(self.delay * 2, 0.25)
        return min(delay, max(self.timeout_s - self.waited_s, 0.0))
