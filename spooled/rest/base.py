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

    def one_text(self, request: Request, name: str, *, max_length: int, required: bool = True) -> Any:
        """The string of a body whose only field is `name`; anything else in it is a 422."""
        body = self.body(request)
        body.only(name)
        value = body.text(name, required=required, max_length=max_length)
        body.done()
        return value


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

    def _checked(
        self, name: str, ok: Callable[[Any], bool], problem: str, required: bool = False, default: Any = None
    ) -> Any:
        """The field when `ok` accepts it; absent: `default` (or required); else `problem` noted and `default`."""
        value = self._get(name, required)
        if value is _MISSING:
            return default
        if not ok(value):
            self.errors[name] = [problem]
            return default
        return value

    def text(self, name: str, *, required: bool = False, max_length: int = 255, default: Any = None) -> Any:
        def ok(v: Any) -> bool:
            return isinstance(v, str) and 1 <= len(v) <= max_length

        return self._checked(
            name, ok, f"Expected a string of 1 to {max_length} characters.", required, default
        )

    def integer(self, name: str, low: int, high: int, *, required: bool = False, default: Any = None) -> Any:
        def ok(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and low <= v <= high

        return self._checked(name, ok, f"Expected an integer from {low} to {high}.", required, default)

    def boolean(self, name: str, *, default: Any = None) -> Any:
        return self._checked(name, lambda v: isinstance(v, bool), "Expected a boolean.", default=default)

    def when(self, name: str) -> datetime | None:
        value = self._get(name, False)
        if value is _MISSING:
            return None
        parsed = parse_client_datetime(value, naive_is_utc=True) if isinstance(value, str) else None
        if parsed is None:
            self.errors[name] = ["Expected an ISO 8601 date-time with a time zone."]
        return parsed

    def obj(self, name: str, *, default: Any = None) -> Any:
        return self._checked(name, lambda v: isinstance(v, dict), "Expected an object.", default=default)

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
