"""Kalshi request signing (API keys), with `cryptography`; the official SDKs are not used.

Every authenticated request carries three headers:

- ``KALSHI-ACCESS-KEY``: the key id (``NT_KALSHI_KEY_ID``),
- ``KALSHI-ACCESS-TIMESTAMP``: the request time in milliseconds since the epoch,
- ``KALSHI-ACCESS-SIGNATURE``: base64 of RSA-PSS(SHA-256, MGF1-SHA-256, salt length = digest length
  = 32 bytes) over ``timestamp_ms + METHOD + path``, where ``path`` is the URL path from the host on,
  including ``/trade-api/v2`` and excluding the query string.

The private key (``NT_KALSHI_PRIVATE_KEY_FILE``, PEM) is read once and kept in memory; it never
reaches a log line, an error or a result.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from nt_mcp.errors import ValidationError

if TYPE_CHECKING:  # cryptography is imported when a key is loaded, not at server start
    from cryptography.hazmat.primitives.asymmetric import padding, rsa


def signing_path(base_url: str, path: str) -> str:
    """The path Kalshi signs: the base URL's path (``/trade-api/v2``) + ``path``, without any query."""
    return urlsplit(base_url).path.rstrip("/") + path.split("?", 1)[0]


def pss_padding() -> padding.PSS:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


class KalshiSigner:
    def __init__(self, key_id: str, private_key: rsa.RSAPrivateKey) -> None:
        self.key_id = key_id
        self._key = private_key

    @classmethod
    def from_pem(cls, key_id: str, pem: bytes) -> KalshiSigner:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise ValidationError(
                "NT_KALSHI_PRIVATE_KEY_FILE does not hold an unencrypted PEM private key.",
                argument="NT_KALSHI_PRIVATE_KEY_FILE",
            ) from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValidationError(
                "NT_KALSHI_PRIVATE_KEY_FILE must hold an RSA private key.", argument="NT_KALSHI_PRIVATE_KEY_FILE"
            )
        return cls(key_id, key)

    @classmethod
    def from_file(cls, key_id: str, path: Path) -> KalshiSigner:
        return cls.from_pem(key_id, path.read_bytes())

    def sign(self, message: str) -> str:
        """base64(RSA-PSS-SHA256(message))."""
        from cryptography.hazmat.primitives import hashes

        signature = self._key.sign(message.encode(), pss_padding(), hashes.SHA256())
        return base64.b64encode(signature).decode()

    def headers(self, method: str, path: str, timestamp_ms: int | None = None) -> dict[str, str]:
        """The three authentication headers for ``METHOD path`` (``path`` as `signing_path` gives it)."""
        stamp = str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))
        return {
            "KALSHI-ACCESS-KEY": self.key_id,
            "KALSHI-ACCESS-TIMESTAMP": stamp,
            "KALSHI-ACCESS-SIGNATURE": self.sign(stamp + method.upper() + path),
        }

    def __repr__(self) -> str:  # never show the key
        return f"KalshiSigner(key_id={self.key_id!r})"
