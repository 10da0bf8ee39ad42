"""JWT bearer tokens for the HTTP transports: verification, scopes, principals, minting, RFC 9728 metadata.

`JwtVerifier` implements the SDK's ``TokenVerifier`` protocol on PyJWT:

- an explicit algorithm allow-list (``NT_JWT_ALGORITHMS``): HS256 with ``NT_JWT_SECRET`` (at least
  32 bytes), or RS256/ES256/EdDSA with ``NT_JWT_PUBLIC_KEY_FILE`` or ``NT_JWT_JWKS_URL``. A shared
  secret and public keys are never mixed, so an HS256 token "signed" with a public key cannot pass.
- required claims ``exp``, ``iat``, ``sub``, ``aud``, ``iss``; exact issuer and audience; ``nbf``
  and ``iat`` may not lie in the future; a small leeway (``NT_JWT_LEEWAY_S``) for clock skew.
  ``exp``, ``iat`` and ``nbf`` must be JSON numbers (RFC 7519 NumericDate: ``"exp": "1700000000"``
  is refused, though PyJWT alone would accept it); ``sub`` a string of 1..200 characters without
  control characters or lone surrogates (it becomes the principal every stored row is keyed by).
- with a JWKS URL the signing key is looked up only there, by ``kid`` (keys cached by PyJWKClient).
- ``typ`` is checked when ``NT_JWT_TYP`` is set (e.g. ``at+jwt``, RFC 9068).

Scopes come from ``scope`` (space separated, RFC 8693/9068) or ``scp`` (a list); unknown scopes are
dropped. A rejected token is logged with the reason only, never the token.
"""

from __future__ import annotations

import logging
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import anyio
import jwt
from mcp.server.auth.provider import AccessToken

from nt_mcp.config import ALL_SCOPES, Settings
from nt_mcp.infra.observability import AUTH_FAILURES

log = logging.getLogger(__name__)

SYMMETRIC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"})
REQUIRED_CLAIMS = ["exp", "iat", "sub", "aud", "iss"]


class AuthConfigError(ValueError):
    """The auth settings cannot give a safe verifier; the message names the setting."""


@dataclass(frozen=True)
class VerifiedToken:
    subject: str
    scopes: list[str]
    claims: dict[str, Any]


def scopes_from_claims(claims: dict[str, Any]) -> list[str]:
    """Known scopes from ``scope`` (space separated string) or ``scp`` (list, or string)."""
    raw: list[str] = []
    scope = claims.get("scope")
    if isinstance(scope, str):
        raw += scope.split()
    scp = claims.get("scp")
    if isinstance(scp, str):
        raw += scp.split()
    elif isinstance(scp, list):
        raw += [item for item in scp if isinstance(item, str)]
    return sorted(set(raw) & set(ALL_SCOPES))


class JwtVerifier:
    """Verifies bearer JWTs minted for this server. ``verify_token`` returns None for any bad token."""

    def __init__(
        self,
        *,
        algorithms: list[str],
        issuer: str,
        audience: str,
        leeway_s: float,
        key: Any = None,
        jwks_client: jwt.PyJWKClient | None = None,
        typ: str | None = None,
    ) -> None:
        if (key is None) == (jwks_client is None):
            raise AuthConfigError("exactly one of a key and a JWKS client is needed")
        self.algorithms = list(algorithms)
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        self._key = key
        self._jwks = jwks_client
        self.typ = typ
        self._verified: dict[str, AccessToken] = {}  # token string -> its verified form, until it expires

    VERIFIED_CACHE_SIZE = 1024

    def _cached(self, token: str) -> AccessToken | None:
        """A token verified before and not yet past its effective expiry (``exp`` + leeway)."""
        hit = self._verified.get(token)
        if hit is None:
            return None
        if hit.expires_at is None or hit.expires_at <= time.time():
            self._verified.pop(token, None)
            return None
        return hit

    def decode(self, token: str) -> VerifiedToken:
        """Verify ``token`` fully; raise ``jwt.InvalidTokenError`` (or a subclass) when it is not good."""
        header = jwt.get_unverified_header(token)
        if header.get("alg") not in self.algorithms:
            raise jwt.InvalidAlgorithmError("algorithm not allowed")
        if self.typ is not None and str(header.get("typ", "")).lower() != self.typ.lower():
            raise jwt.InvalidTokenError("unexpected typ")
        key = self._key
        if self._jwks is not None:
            if not header.get("kid"):
                raise jwt.InvalidTokenError("kid missing")
            key = self._jwks.get_signing_key(str(header["kid"])).key
        options: dict[str, Any] = {"require": REQUIRED_CLAIMS}
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=self.algorithms,
            audience=self.audience,
            issuer=self.issuer,
            leeway=self.leeway_s,
            options=options,  # type: ignore[arg-type]
        )
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise jwt.InvalidTokenError(f"{name} must be a NumericDate (a JSON number)")
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip():
            raise jwt.InvalidTokenError("sub must be a non-empty string")
        if len(sub) > 200 or _unstorable(sub):
            raise jwt.InvalidTokenError("sub must be at most 200 characters, without control characters")
        return VerifiedToken(subject=claims["sub"], scopes=scopes_from_claims(claims), claims=claims)

    async def verify_token(self, token: str) -> AccessToken | None:
        """The token's `AccessToken`, or None when it is not good. A good token is verified once and
        then served from a bounded cache keyed by the token string until its ``exp`` (plus leeway):
        a JWT cannot change, and this server has no revocation list, so the answer is the same."""
        cached = self._cached(token)
        if cached is not None:
            return cached
        try:
            if self._jwks is not None:  # PyJWKClient fetches with urllib: keep it off the event loop
                verified = await anyio.to_thread.run_sync(self.decode, token)
            else:
                verified = self.decode(token)
        except (jwt.InvalidTokenError, jwt.PyJWKClientError) as error:
            reason = _reason(error)
            AUTH_FAILURES.labels(reason).inc()
            log.info("bearer token rejected", extra={"reason": reason})
            return None
        claims = verified.claims
        access = AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or verified.subject),
            scopes=verified.scopes,
            # the SDK's bearer backend drops tokens past expires_at with no leeway: give it the
            # effective expiry, exp plus the clock-skew allowance PyJWT already applied
            expires_at=int(claims["exp"]) + math.ceil(self.leeway_s),
            resource=self.audience,
            subject=verified.subject,
            claims={"iss": claims["iss"]},
        )
        if len(self._verified) >= self.VERIFIED_CACHE_SIZE:
            self._verified.pop(next(iter(self._verified)))  # the oldest entry
        self._verified[token] = access
        return access


def _unstorable(text: str) -> bool:
    return any(ord(char) < 32 or ord(char) == 127 or 0xD800 <= ord(char) <= 0xDFFF for char in text)


def _reason(error: Exception) -> str:
    """A short label for a rejection: ``ExpiredSignatureError`` -> ``expired_signature``."""
    name = type(error).__name__.removesuffix("Error") or "invalid_token"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _algorithms(settings: Settings, default: list[str]) -> list[str]:
    if not settings.jwt_algorithms:
        return default
    return [a.strip() for a in settings.jwt_algorithms.split(",") if a.strip()]


def build_verifier(settings: Settings) -> JwtVerifier:
    """The verifier the settings describe. Raises `AuthConfigError` when none or an unsafe one is set."""
    sources = [
        name
        for name, value in (
            ("NT_JWT_SECRET", settings.jwt_secret),
            ("NT_JWT_PUBLIC_KEY_FILE", settings.jwt_public_key_file),
            ("NT_JWT_JWKS_URL", settings.jwt_jwks_url),
        )
        if value is not None
    ]
    if not sources:
        raise AuthConfigError(
            "the HTTP transports need token verification: set NT_JWT_SECRET (32+ bytes), "
            "NT_JWT_PUBLIC_KEY_FILE or NT_JWT_JWKS_URL; refusing to start an open server"
        )
    if len(sources) > 1:
        raise AuthConfigError(f"set only one of {', '.join(sources)}")
    common: dict[str, Any] = {
        "issuer": settings.jwt_issuer,
        "audience": settings.token_audience,
        "leeway_s": settings.jwt_leeway_s,
        "typ": settings.jwt_typ,
    }
    if settings.jwt_secret is not None:
        algorithms = _algorithms(settings, ["HS256"])
        if not algorithms or not set(algorithms) <= SYMMETRIC_ALGORITHMS:
            raise AuthConfigError("NT_JWT_ALGORITHMS with NT_JWT_SECRET may only list HS256, HS384, HS512")
        return JwtVerifier(algorithms=algorithms, key=settings.jwt_secret.get_secret_value(), **common)
    algorithms = _algorithms(settings, ["RS256", "ES256", "EdDSA"])
    if not algorithms or not set(algorithms) <= ASYMMETRIC_ALGORITHMS:
        raise AuthConfigError(
            "NT_JWT_ALGORITHMS with public keys may only list " + ", ".join(sorted(ASYMMETRIC_ALGORITHMS))
        )
    if settings.jwt_jwks_url is not None:
        client = jwt.PyJWKClient(settings.jwt_jwks_url, cache_keys=True, lifespan=300, timeout=5)
        return JwtVerifier(algorithms=algorithms, jwks_client=client, **common)
    assert settings.jwt_public_key_file is not None
    try:
        pem = settings.jwt_public_key_file.read_bytes()
    except OSError as error:
        raise AuthConfigError(f"NT_JWT_PUBLIC_KEY_FILE cannot be read: {error.strerror}") from None
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem)
    except ValueError:
        raise AuthConfigError("NT_JWT_PUBLIC_KEY_FILE is not a PEM public key") from None
    return JwtVerifier(algorithms=algorithms, key=key, **common)


_TTL = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")


def parse_ttl(text: str) -> int:
    """``90``, ``90s``, ``15m``, ``1h``, ``7d`` -> seconds."""
    match = _TTL.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ValueError(f"bad TTL {text!r}; use e.g. 900, 15m, 1h or 7d")
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def mint_token(settings: Settings, subject: str, scopes: list[str], ttl_s: int) -> str:
    """An HS256 token for ``subject`` with ``scopes``, signed with ``NT_JWT_SECRET``."""
    if settings.jwt_secret is None:
        raise AuthConfigError("NT_JWT_SECRET is not set; `token create` mints HS256 tokens with it")
    unknown = sorted(set(scopes) - set(ALL_SCOPES))
    if unknown:
        raise ValueError(f"unknown scope(s) {', '.join(unknown)}; known: {', '.join(ALL_SCOPES)}")
    if not subject.strip():
        raise ValueError("the subject must not be empty")
    now = int(time.time())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.token_audience,
        "sub": subject,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
    }
    headers = {"typ": settings.jwt_typ} if settings.jwt_typ else None
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256", headers=headers)


def resource_metadata_url(settings: Settings) -> str:
    """Where the RFC 9728 metadata for the /mcp resource lives (path-inserted form, RFC 9728 3.1)."""
    return f"{settings.base_url}/.well-known/oauth-protected-resource/mcp"


def protected_resource_metadata(settings: Settings) -> dict[str, Any]:
    """RFC 9728 protected resource metadata for the /mcp endpoint."""
    metadata: dict[str, Any] = {
        "resource": settings.resource_url,
        "scopes_supported": list(ALL_SCOPES),
        "bearer_methods_supported": ["header"],
        "resource_name": "nt-mcp",
    }
    if settings.jwt_issuer.startswith(("https://", "http://")):
        metadata["authorization_servers"] = [settings.jwt_issuer]
    return metadata
