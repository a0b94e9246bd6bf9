"""Dashboard sessions: a workspace user (email and password) or an API key, remembered in the Django session.

The session stores ids only. Every request re-reads the workspace and re-checks the credential behind it, so
revoking or rotating the key, deactivating the user or changing their password ends dashboard sessions at once,
as it ends API access.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme

from accounts.exceptions import Unauthorized
from accounts.models import ApiKey, Workspace
from accounts.services import KEY_PREFIX, hash_api_key, password_stamp, password_stamp_matches, user_login

SESSION_WORKSPACE = "dashboard_workspace_id"
SESSION_API_KEY = "dashboard_api_key_id"
SESSION_USER = "dashboard_user_id"
SESSION_PASSWORD = "dashboard_password_stamp"


def login_with_password(*, email: str, password: str) -> tuple[Workspace, Any]:
    """The user's workspace, through the same service as `POST /v1/auth/login` (it creates one if missing)."""
    user, _tokens = user_login(email=email, password=password)
    workspace = Workspace.objects.select_related("plan").get(owner=user)
    return workspace, user


def login_with_api_key(*, raw_key: str) -> tuple[Workspace, ApiKey]:
    """The key's workspace; looked up by SHA-256 digest on the unique index, as accounts.authentication does."""
    raw_key = raw_key.strip()
    key = None
    if raw_key.startswith(KEY_PREFIX):
        key = (
            ApiKey.objects.select_related("workspace__plan")
            .filter(key_hash=hash_api_key(raw_key), revoked_at__isnull=True)
            .first()
        )
    if key is None:
        raise Unauthorized("Unknown or revoked API key.")
    return key.workspace, key


def session_start(
    request: HttpRequest, *, workspace: Workspace, user: Any = None, api_key: ApiKey | None = None
) -> None:
    # A new session key on login: a session id planted before login (fixation) is worth nothing after it.
    request.session.cycle_key()
    request.session[SESSION_WORKSPACE] = workspace.id
    request.session[SESSION_USER] = user.pk if user is not None else None
    request.session[SESSION_API_KEY] = api_key.id if api_key is not None else None
    # A password change ends this session as it ends the user's tokens (accounts.services.password_stamp).
    request.session[SESSION_PASSWORD] = password_stamp(user.password) if user is not None else None


def session_workspace(request: HttpRequest) -> Workspace | None:
    """The session's workspace if its credential still holds, else None (and the session is emptied)."""
    session = request.session
    workspace_id = session.get(SESSION_WORKSPACE)
    if not workspace_id:
        return None
    key_id, user_id = session.get(SESSION_API_KEY), session.get(SESSION_USER)
    workspace = Workspace.objects.select_related("plan").filter(id=workspace_id).first()
    valid = workspace is not None and (
        (key_id and ApiKey.objects.filter(id=key_id, workspace=workspace, revoked_at__isnull=True).exists())
        or (user_id and _user_still_valid(user_id, workspace, session.get(SESSION_PASSWORD)))
    )
    if not valid:
        session.flush()
        return None
    return workspace


def _user_still_valid(user_id: Any, workspace: Workspace, stamp: object) -> bool:
    """Active, owner of the workspace, and with the password the session was started under."""
    user = (
        get_user_model()
        .objects.filter(pk=user_id, is_active=True, workspace=workspace)
        .only("password")
        .first()
    )
    return user is not None and password_stamp_matches(user, stamp)


def session_label(request: HttpRequest) -> str:
    """Who is signed in, for the header: the user's email, or the API key's visible prefix."""
    user_id, key_id = request.session.get(SESSION_USER), request.session.get(SESSION_API_KEY)
    if user_id:
        user = get_user_model().objects.filter(pk=user_id).first()
        return user.get_username() if user is not None else ""
    key = ApiKey.objects.filter(id=key_id).first() if key_id else None
    return f"API key {key.prefix}…" if key is not None else ""


def safe_next(request: HttpRequest, candidate: str | None, default: str) -> str:
    """Only same-site relative targets: `?next=https://evil.example` must not turn login into a redirector."""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return default


def workspace_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Sets `request.workspace`; without a valid session: the login page (htmx requests are told to go there)."""

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        workspace = session_workspace(request)
        if workspace is None:
            login_url = reverse("dashboard:login") + "?" + urlencode({"next": request.get_full_path()})
            if request.headers.get("HX-Request"):
                response = HttpResponse(status=401)
                response["HX-Redirect"] = login_url
                return response
            return HttpResponseRedirect(login_url)
        request.workspace = workspace  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    return wrapped
