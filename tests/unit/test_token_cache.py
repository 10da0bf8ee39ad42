"""Verified bearer tokens are remembered until they expire, and never past that."""

from __future__ import annotations

import asyncio
from pathlib import Path

from nt_mcp.server.auth import build_verifier, mint_token
from tests.conftest import make_settings


async def test_a_verified_token_is_served_from_the_cache_and_refused_once_expired(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, jwt_secret="s" * 32, jwt_leeway_s=0)
    verifier = build_verifier(settings)
    token = mint_token(settings, "alice", ["read"], ttl_s=2)
    first = await verifier.verify_token(token)
    assert first is not None and first.subject == "alice"
    decode = verifier.decode
    verifier.decode = None  # type: ignore[method-assign,assignment]  # a second verification would fail
    assert await verifier.verify_token(token) is first
    verifier.decode = decode  # type: ignore[method-assign]
    await asyncio.sleep(2.2)
    assert await verifier.verify_token(token) is None  # expired: dropped from the cache, never re-verified


async def test_a_bad_token_is_never_cached(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, jwt_secret="s" * 32)
    verifier = build_verifier(settings)
    token = mint_token(settings, "bob", ["read"], ttl_s=60)
    assert await verifier.verify_token(token[:-2] + "xx") is None
    assert await verifier.verify_token(token) is not None
