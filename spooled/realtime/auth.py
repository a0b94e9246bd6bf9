"""Who a raw credential is, for the surfaces that carry it outside an `Authorization` header of a DRF view:
Spooled's WebSocket (`?token=`), its SSE streams (async views) and gRPC (`x-api-key` metadata).

The same Bearer logic as every API route (accounts.authentication): a workspace API key, or an access token
from a login (an API-key login's token acts while its key is active).
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions

from accounts.authentication import ApiKeyAuthentication, JwtAuthentication, WorkspacePrincipal


class _Credential:
    """What the authenticators read of a request: its Authorization header, and the path a key's scope is
    checked against (accounts.models.ApiKey.refusal). A stream or a gRPC channel is not bound to one queue, so
    its path is one that no queue scope covers: a queue-scoped key is refused here, an expired one too."""

    path_info = ""
    method = "GET"

    def __init__(self, token: str) -> None:
        self.headers = {"authorization": f"Bearer {token}"}
        self.META = {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def principal_for_token(token: str | None) -> WorkspacePrincipal | None:
    """The principal a key or access token names; None when it is missing, malformed, unknown or revoked."""
    if not token or not token.strip() or any(c.isspace() for c in token.strip()):
        return None
    request: Any = _Credential(token.strip())
    try:
        for authenticator in (ApiKeyAuthentication(), JwtAuthentication()):
            found = authenticator.authenticate(request)
            if found is not None:
                return found[0]
    except exceptions.APIException:
        return None
    return None


def still_authorized(token: str, workspace_id: str) -> bool:
    """A long stream's periodic re-check: the credential still names the same, still existing workspace."""
    principal = principal_for_token(token)
    return principal is not None and principal.workspace.id == workspace_id
