"""The base of every /api/v1 view: Spooled's errors, the acting workspace, queue-scoped keys, strict bodies.

The surface is left out of the OpenAPI document (`schema = None`): the document describes Spindle's /v1 contract,
which must not change, and this surface is Spooled's wire format, whose reference is Spooled's own (seed 001 and
the SDK); its error and list shapes would otherwise sit beside /v1's single envelope as a second convention.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.models import ApiKey
from accounts.services import KEY_ID_CLAIM
from config.exceptions import Forbidden, ValidationFailed
from config.inputs import parse_client_datetime
from spooled.rest.errors import exception_handler


class SpooledView(APIView):
    schema = None  # see the module docstring

    def get_exception_handler(self) -> Callable[..., Any]:
        return exception_handler

    @property
    def workspace(self) -> Any:
        return self.request.user.workspace

    def scope_key(self) -> ApiKey | None:
        """The API key behind the request (directly, or through a token from /auth/login), if any."""
        principal = self.request.user
        if principal.api_key is not None:
            return principal.api_key
        if not hasattr(self, "_token_key"):
            key_id = getattr(self.request.auth, "payload", {}).get(KEY_ID_CLAIM)
            self._token_key = ApiKey.objects.filter(pk=key_id).first() if key_id else None
        return self._token_key

    def require_queue(self, queue_name: str) -> None:
        """403 when a queue-scoped key names a queue outside its scope."""
        key = self.scope_key()
        if key is not None and not key.allows_queue(queue_name):
            raise Forbidden(f"This API key may not act on queue '{queue_name}'.")

    def require_unscoped(self) -> None:
        """403 for a queue-scoped key: workspace-wide settings need an unrestricted one."""
        key = self.scope_key()
        if key is not None and key.queues:
            raise Forbidden("This needs an API key that is not limited to queues.")

    def body(self, request: Request) -> Body:
        data = request.data
        if data is None or (data == {} and not request.body):
            data = {}
        if not isinstance(data, dict):
            raise ValidationFailed(
                "The body must be a JSON object.", details={"body": ["Expected an object."]}
            )
        return Body(data)


_MISSING = object()


class Body:
    """Typed reads of a JSON body that collect every problem, then `done()` raises one 422 naming them all."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.errors: dict[str, list[str]] = {}

    def _get(self, name: str, required: bool) -> Any:
        value = self.data.get(name, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.errors[name] = ["This field is required."]
            return _MISSING
        return value

    def text(self, name: str, *, required: bool = False, max_length: int = 255, default: Any = None) -> Any:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if not isinstance(value, str) or not 1 <= len(value) <= max_length:
            self.errors[name] = [f"Expected a string of 1 to {max_length} characters."]
            return default
        return value

    def integer(self, name: str, low: int, high: int, *, required: bool = False, default: Any = None) -> Any:
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.errors[name] = [f"Expected an integer from {low} to {high}."]
            return default
        return value

    def boolean(self, name: str, *, default: Any = None) -> Any:
        value = self._get(name, False)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.errors[name] = ["Expected a boolean."]
            return default
        return value

    def when(self, name: str) -> datetime | None:
        value = self._get(name, False)
        if value is _MISSING:
            return None
        parsed = parse_client_datetime(value, naive_is_utc=True) if isinstance(value, str) else None
        if parsed is None:
            self.errors[name] = ["Expected an ISO 8601 date-time with a time zone."]
        return parsed

    def obj(self, name: str, *, default: Any = None) -> Any:
        value = self._get(name, False)
        if value is _MISSING:
            return default
        if not isinstance(value, dict):
            self.errors[name] = ["Expected an object."]
            return default
        return value

    def text_list(self, name: str, *, max_items: int = 100, max_length: int = 255) -> list[str] | None:
        value = self._get(name, False)
        if value is _MISSING:
            return None
        if not isinstance(value, list) or len(value) > max_items:
            self.errors[name] = [f"Expected a list of at most {max_items} strings."]
            return None
        if not all(isinstance(v, str) and 1 <= len(v) <= max_length for v in value):
            self.errors[name] = [f"Expected strings of 1 to {max_length} characters."]
            return None
        return value

    def refuse(self, name: str, message: str) -> None:
        if self.data.get(name) is not None:
            self.errors[name] = [message]

    def only(self, *allowed: str) -> None:
        for name in sorted(set(self.data) - set(allowed)):
            self.errors[name] = ["Unknown field."]

    def done(self) -> None:
        if self.errors:
            raise ValidationFailed(details=self.errors)


def query_when(raw: str, name: str) -> datetime | None:
    """A date-time query parameter (naive means UTC); anything else is 422 naming it."""
    body = Body({name: raw})
    value = body.when(name)
    body.done()
    return value
