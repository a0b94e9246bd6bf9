"""Auth: login with an API key, refresh, logout, me, validate, and the passwordless e-mail login."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils import timezone
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.services import api_key_check, api_key_login
from config.ratelimit import login_rate_check
from queues.events import iso
from spooled import auth
from spooled.rest.base import SpooledView

# An API key without an expiry: `expires_at` is required by the SDK's /auth/me model.
NEVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


class PublicView(SpooledView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []


def _tokens(pair: Any, *, refresh_expiry: bool = True) -> dict[str, Any]:
    """A login's token pair; a refresh answers without `refresh_expires_in`, as Spooled's does."""
    tokens = {
        "access_token": pair.access,
        "refresh_token": pair.refresh,
        "token_type": "Bearer",
        "expires_in": auth.access_lifetime_s(),
    }
    if refresh_expiry:
        tokens["refresh_expires_in"] = auth.refresh_lifetime_s()
    return tokens


class LoginView(PublicView):
    def post(self, request: Request) -> Response:
        login_rate_check(request)
        raw = self.one_text(request, "api_key", max_length=200)
        key, pair = api_key_login(raw_key=raw)
        api_key_check(key, request=request, now=timezone.now())
        return Response(_tokens(pair))


class RefreshView(PublicView):
    def post(self, request: Request) -> Response:
        login_rate_check(request)
        raw = self.one_text(request, "refresh_token", max_length=2000)
        pair = auth.access_from_refresh(raw)
        return Response(_tokens(pair, refresh_expiry=False))


class LogoutView(SpooledView):
    def post(self, request: Request) -> Response:
        raw = self.one_text(request, "refresh_token", max_length=2000, required=False)
        auth.logout(raw)
        return Response({"success": True})


def _from_epoch(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, (int, float)) else None


class MeView(SpooledView):
    def get(self, request: Request) -> Response:
        workspace = self.workspace
        key = self.scope_key()
        # A raw key carries its own dates; a token its issue and expiry times.
        payload = {} if request.user.api_key is not None else getattr(request.auth, "payload", {})
        issued = _from_epoch(payload.get("iat")) or (key.created_at if key else workspace.created_at)
        expires = _from_epoch(payload.get("exp")) or (key.expires_at if key else None) or NEVER
        return Response(
            {
                "organization_id": workspace.id,
                "api_key_id": key.id if key else "",
                "queues": list(key.queues) if key else [],
                "issued_at": iso(issued),
                "expires_at": iso(expires),
                "organization": {
                    "id": workspace.id,
                    "name": workspace.name,
                    "slug": workspace.id,
                    "plan_tier": workspace.plan_id,
                    "billing_email": workspace.owner.email if workspace.owner_id else None,
                },
            }
        )


class ValidateView(PublicView):
    def post(self, request: Request) -> Response:
        raw = self.one_text(request, "token", max_length=2000)
        try:
            info = auth.token_info(raw)
        except auth.Unauthorized as exc:
            return Response({"valid": False, "error": exc.message})
        return Response(
            {
                "valid": True,
                "organization_id": info.workspace_id,
                "api_key_id": info.key.id if info.key else None,
                "queues": list(info.key.queues) if info.key else [],
                "expires_at": iso(_from_epoch(info.expires_at)),
            }
        )


class EmailStartView(PublicView):
    def post(self, request: Request) -> Response:
        login_rate_check(request)
        body = self.body(request)
        body.only("email")
        email = body.text("email", required=True, max_length=254)
        if email and "@" not in email:
            body.errors["email"] = ["Expected an e-mail address."]
        body.done()
        auth.email_login_start(email)
        return Response(
            {
                "message": "If an account uses this address, a login code was sent to it.",
                "email_sent_to": email,
                "expires_in": auth.EMAIL_CODE_TTL_S,
            }
        )


class EmailVerifyView(PublicView):
    def post(self, request: Request) -> Response:
        login_rate_check(request)
        body = self.body(request)
        body.only("email", "code")
        email = body.text("email", required=True, max_length=254)
        code = body.text("code", required=True, max_length=16)
        body.done()
        return Response(_tokens(auth.email_login_verify(email, code)))
