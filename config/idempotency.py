"""`Idempotency-Key` request header for POSTs that create (IETF draft-ietf-httpapi-idempotency-key-header).

Use it on a DRF view method (viewset action or APIView method) or an `@api_view` function:

    @creates(InSerializer, OutSchema, errors=(400, 401, 415, 422), description="...")
    def create(self, request, *args, **kwargs): ...

(`@extend_schema(parameters=[IDEMPOTENCY_KEY_PARAMETER], ...)` over `@idempotent` where the schema differs)

or mix `IdempotentMixin` into a viewset (it covers the actions in `idempotent_actions`, default `create`).

Semantics (API.md "Conventions"), scoped by workspace and stored in the Django cache (Redis in production):
- the first request with a key stores an in-flight marker (`cache.add`, atomic) holding a fingerprint of
  method + path + raw body;
- a repeat with the same key and fingerprint after it finished returns the stored status and body
  (kept 24 h, header `Idempotent-Replayed: true`) and runs nothing;
- the same key with a different fingerprint is 422 IDEMPOTENCY_KEY_REUSED;
- the same key while the first request is in flight is 409 CONFLICT;
- a first request that ends in 5xx or raises an unexpected error releases the key, so the client may retry;
- 2xx, 3xx and 4xx responses are stored and replayed as they were. The draft says a resource server answers a
  repeat with the first outcome; a 4xx (a validation error, a 402 quota refusal) is that outcome too. A client that
  fixes its request sends a new key.
No header: the view runs as usual. An empty key or one over 255 characters is 400 BAD_REQUEST.

Every authenticated POST that creates uses it (queues, jobs and batches, workers, keys, schedules and their
trigger, execution replay, alerts, webhooks). Registration and login are left out on purpose: they run before
authentication, so there is no workspace to scope a key by, and a shared "anon" scope would let one client
replay another's response (a fresh API key or tokens).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.core.cache import cache
from django.http.request import RawPostDataException
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import error_responses
from config.exceptions import ApplicationError, BadRequest, Conflict, IdempotencyKeyReused

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 255
IN_FLIGHT_TTL_S = 60
RESULT_TTL_S = 24 * 3600
REPLAY_HEADER = "Idempotent-Replayed"

IDEMPOTENCY_KEY_PARAMETER = OpenApiParameter(
    name=HEADER,
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Optional, 1-255 characters. A repeat with the same key and body within 24 h returns the first response "
        "(same status and body, header `Idempotent-Replayed: true`) and creates nothing; 4xx outcomes are replayed "
        "too. Same key, different body: 422 IDEMPOTENCY_KEY_REUSED. Same key while the first is in flight: 409 CONFLICT. "
        "Honoured on every authenticated POST that creates; not on register, register-anonymous and login, which "
        "are unauthenticated: there is no workspace to scope the key by (they are rate-limited per address instead)."
    ),
)


def _parse_key(raw: str) -> str:
    key = raw.strip()
    # The draft sends the key as a structured-field string ("…"); plain tokens are accepted too.
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_CHARS:
        raise BadRequest(
            f"The {HEADER} header must be 1 to {MAX_KEY_CHARS} characters.",
            details={HEADER: [f"Expected 1 to {MAX_KEY_CHARS} characters."]},
        )
    return key


def _fingerprint(request: Request) -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode())
    digest.update(b"\n")
    digest.update(request.get_full_path().encode())
    digest.update(b"\n")
    try:
        digest.update(request.body)
    except RawPostDataException:
        # The body stream was already parsed; the canonical JSON of the data identifies it as well.
        digest.update(json.dumps(request.data, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()


def _cache_key(workspace_id: str, key: str) -> str:
    return "idem:" + workspace_id + ":" + hashlib.sha256(key.encode()).hexdigest()


def _workspace_id(request: Request) -> str:
    user = request.user
    workspace = getattr(user, "workspace", None)
    return str(workspace.id) if workspace is not None else "anon"


def _find_request(args: tuple[Any, ...]) -> tuple[Any, Request]:
    # Bound method: (self, request, ...); @api_view function: (request, ...).
    if args and isinstance(args[0], Request):
        return None, args[0]
    return args[0], args[1]


def _error_response(exc: ApplicationError | Exception, view: Any, request: Request) -> Response | None:
    from config.exceptions import exception_handler

    response = exception_handler(exc, {"view": view, "request": request})
    if response is None or response.status_code >= 500:
        return None
    return response


def idempotent(view_method: Callable[..., Response]) -> Callable[..., Response]:
    """Wrap a DRF handler so it honours the Idempotency-Key header (see the module docstring)."""

    @functools.wraps(view_method)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        view, request = _find_request(args)
        raw = request.headers.get(HEADER)
        if raw is None:
            return view_method(*args, **kwargs)
        key = _parse_key(raw)
        fingerprint = _fingerprint(request)
        cache_key = _cache_key(_workspace_id(request), key)

        for _ in range(2):
            if cache.add(cache_key, {"state": "in_flight", "fp": fingerprint}, IN_FLIGHT_TTL_S):
                break
            stored = cache.get(cache_key)
            if stored is None:
                continue  # expired between add and get: try to take it again
            if stored.get("fp") != fingerprint:
                raise IdempotencyKeyReused(details={HEADER: ["Already used with a different request."]})
            if stored.get("state") == "in_flight":
                raise Conflict(
                    "A request with this Idempotency-Key is still in progress.",
                    details={HEADER: ["The first request with this key has not finished yet."]},
                )
            response = Response(stored["data"], status=stored["status"])
            response[REPLAY_HEADER] = "true"
            return response
        else:
            raise Conflict(details={HEADER: ["The first request with this key has not finished yet."]})

        try:
            response = view_method(*args, **kwargs)
        except Exception as exc:
            # Client errors are outcomes and are kept; anything else releases the key so a retry can run.
            handled = (
                _error_response(exc, view, request)
                if isinstance(exc, ApplicationError) or hasattr(exc, "status_code")
                else None
            )
            if handled is None:
                cache.delete(cache_key)
                raise
            response = handled
        if response.status_code >= 500:
            cache.delete(cache_key)
            return response
        cache.set(
            cache_key,
            {"state": "done", "fp": fingerprint, "status": response.status_code, "data": response.data},
            RESULT_TTL_S,
        )
        return response

    wrapper._idempotent = True  # type: ignore[attr-defined]  # lets IdempotentMixin skip decorated handlers
    return wrapper


def creates(
    request: Any, created: Any, *, errors: tuple[int, ...], status_code: int = 201, **schema: Any
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """A POST handler that creates: `idempotent`, and documented with the Idempotency-Key header, its `request`
    body, `created` under `status_code` and the error envelope under `errors` (the header is documented exactly
    where it is honoured). Other `extend_schema` arguments (description, tags, operation_id) pass through."""

    def decorate(view_method: Callable[..., Response]) -> Callable[..., Response]:
        return extend_schema(
            request=request,
            parameters=[IDEMPOTENCY_KEY_PARAMETER],
            responses={status_code: created, **error_responses(*errors)},
            **schema,
        )(idempotent(view_method))

    return decorate


class IdempotentMixin:
    """Viewset mixin: the actions named in `idempotent_actions` honour the Idempotency-Key header.

    Works after authentication (DRF's `initial`), where the workspace is known: the bound handler for this
    request's method is swapped for its `idempotent` wrapper before DRF looks it up.
    """

    idempotent_actions: frozenset[str] = frozenset({"create"})

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # type: ignore[misc]
        if request.method == "POST" and getattr(self, "action", None) in self.idempotent_actions:
            handler = getattr(self, "post", None)
            if handler is not None and not getattr(handler, "_idempotent", False):
                self.post = idempotent(handler)
