"""Kalshi request signing with a known test key pair, verified with its public key."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from nt_mcp.adapters.prediction.kalshi_auth import KalshiSigner, signing_path
from nt_mcp.errors import ValidationError

DATA = Path(__file__).resolve().parents[1] / "data"
KEY = DATA / "kalshi_test_only_rsa.pem"
PUBLIC = DATA / "kalshi_test_only_rsa.pub.pem"


def _public() -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(PUBLIC.read_bytes())
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _verify(signature_b64: str, message: str) -> None:
    _public().verify(
        base64.b64decode(signature_b64),
        message.encode(),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),  # salt = SHA-256 digest length
        hashes.SHA256(),
    )


def test_signing_path_keeps_the_api_prefix_and_drops_the_query() -> None:
    base = "https://external-api.demo.kalshi.co/trade-api/v2"
    assert signing_path(base, "/portfolio/orders?ticker=X&limit=200") == "/trade-api/v2/portfolio/orders"
    assert signing_path(base + "/", "/portfolio/events/orders") == "/trade-api/v2/portfolio/events/orders"


def test_headers_sign_timestamp_method_and_path_with_rsa_pss_sha256() -> None:
    signer = KalshiSigner.from_file("key-id-123", KEY)
    headers = signer.headers("post", "/trade-api/v2/portfolio/events/orders", timestamp_ms=1703123456789)
    assert headers["KALSHI-ACCESS-KEY"] == "key-id-123"
    assert headers["KALSHI-ACCESS-TIMESTAMP"] == "1703123456789"
    _verify(headers["KALSHI-ACCESS-SIGNATURE"], "1703123456789POST/trade-api/v2/portfolio/events/orders")
    with pytest.raises(InvalidSignature):  # the query string, or another method, is not what was signed
        _verify(headers["KALSHI-ACCESS-SIGNATURE"], "1703123456789GET/trade-api/v2/portfolio/events/orders")
    assert "BEGIN" not in repr(signer) and "key-id-123" in repr(signer)


def test_a_file_without_an_rsa_key_is_refused_naming_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "k.pem"
    bad.write_text("not a key")
    with pytest.raises(ValidationError) as refused:
        KalshiSigner.from_file("id", bad)
    assert refused.value.argument == "NT_KALSHI_PRIVATE_KEY_FILE"
