"""Who is calling: the bearer token's principal, else the local operator (stdio, or HTTP without auth)."""

from __future__ import annotations

from mcp.server.auth.middleware.auth_context import get_access_token

from nt_mcp.errors import AuthenticationError
from nt_mcp.tools.registry import Principal


def resolve_principal(local_principal: Principal | None) -> Principal:
    """The principal of the request being served; `AuthenticationError` when there is no token and no
    local operator."""
    token = get_access_token()
    if token is not None:
        return Principal(subject=token.subject or token.client_id, scopes=frozenset(token.scopes), kind="token")
    if local_principal is not None:
        return local_principal
    raise AuthenticationError("A valid bearer token is required.")
