"""The OpenAPI generator's house rules, applied to every operation in one place (DEFAULT_SCHEMA_CLASS).

- operationIds: `<resources>_<verb>` from the path without `/v1` and without parameters, e.g. `queues_list`,
  `queues_create`, `schedules_retrieve`; an action route is named by its path alone (`queues_jobs_cancel`,
  `auth_login`), with the verb only when it is not a POST (`queues_dlq_list`, `schedules_pause_partial_update`).
  A view's own `operation_id` wins (`jobs_enqueue`, `jobs_retrieve`…).
- Tags: a view's own tags win; otherwise the title of the last resource in the path (`Executions`).
- Responses: what every route can answer although no view says it, from the middleware stack and the global
  throttle (API.md Conventions): 429 with `Retry-After` and the `X-RateLimit-*` headers wherever the workspace
  rate limit counts the request, 503 on every `/v1` route (database or broker down), and `Idempotent-Replayed`
  on the routes that honour `Idempotency-Key`.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import force_instance
from rest_framework.permissions import AllowAny

from config.api import error_responses
from config.idempotency import HEADER as IDEMPOTENCY_HEADER
from config.idempotency import REPLAY_HEADER
from config.schema_examples import EXAMPLES

_CRUD_ACTIONS = frozenset({"list", "create", "retrieve", "update", "partial_update", "destroy"})

_RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

# components/headers; the rate-limit headers are optional: a plan without a limit, or a rate-limit store that is
# down (the limit then fails open), answers without them.
HEADERS: dict[str, dict[str, Any]] = {
    "X-RateLimit-Limit": {
        "description": "Requests per minute of the workspace's plan.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the current one-minute window.",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Reset": {
        "description": "When the current window ends (unix seconds).",
        "schema": {"type": "integer"},
    },
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": {"type": "integer"}},
    "Retry-After-Required": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
        "required": True,
    },
    REPLAY_HEADER: {
        "description": f"`true` when this is the stored response of an earlier request with the same "
        f"{IDEMPOTENCY_HEADER} and body: nothing was done again.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}


def _ref(component: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{component}"}


def _is_list_envelope(serializer: Any) -> bool:
    fields = getattr(force_instance(serializer), "fields", None)
    return fields is not None and set(fields) == {"data", "next_cursor"}


class SpindleAutoSchema(AutoSchema):
    """drf-spectacular's AutoSchema with Spindle's naming, tags and implicit responses (module docstring)."""

    def get_operation_id(self) -> str:
        tokens = [token.replace("-", "_") for token in self._tokenize_path()] or ["root"]
        action = getattr(self.view, "action", None)
        if action in _CRUD_ACTIONS:
            verb = action
        elif self.method == "POST":
            return "_".join(tokens)
        elif self.method == "GET":
            verb = "list" if self._returns_list_envelope() else "retrieve"
        else:
            verb = self.method_mapping[self.method.lower()]
        return "_".join([*tokens, verb])

    def _returns_list_envelope(self) -> bool:
        serializer = self.get_response_serializers()
        if isinstance(serializer, dict):  # {200: serializer} or {(200, media type): serializer}
            ok = [
                s
                for code, s in serializer.items()
                if (code[0] if isinstance(code, tuple) else code) in (200, "200")
            ]
            return any(_is_list_envelope(s) for s in ok)
        return _is_list_envelope(serializer)

    def get_tags(self) -> list[str]:
        tokens = self._tokenize_path()
        return [tokens[-1].replace("-", " ").capitalize()] if tokens else ["Status"]

    def get_auth(self) -> list[dict[str, Any]]:
        # An authenticator that a view lists twice (or a scheme also named in settings) is one requirement.
        unique: list[dict[str, Any]] = []
        for requirement in super().get_auth():
            if requirement not in unique:
                unique.append(requirement)
        return unique

    def _counts_workspace_rate(self) -> bool:
        """The per-workspace throttle counts the requests of routes that require a key or token."""
        if not self.view.get_throttles() or not self.view.get_authenticators():
            return False
        return not any(isinstance(p, AllowAny) for p in self.view.get_permissions())

    def _honours_idempotency_key(self) -> bool:
        return any(
            getattr(p, "name", None) == IDEMPOTENCY_HEADER and getattr(p, "location", None) == "header"
            for p in self.get_override_parameters()
        )

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        if direction != "response" or not self.path.startswith("/v1/"):
            return responses
        rate_limited = self._counts_workspace_rate()
        replayed = self._honours_idempotency_key()
        # Idempotency-Key: a malformed key is 400, one still in flight 409, one reused with another body 422.
        implicit = ([400, 409, 422] if replayed else []) + ([429] if rate_limited else []) + [503]
        for status, response in error_responses(*implicit).items():
            if str(status) not in responses:
                responses[str(status)] = self._get_response_for_code(response, str(status))
        for status, response in responses.items():
            headers = response.setdefault("headers", {})
            if status == "429":
                headers["Retry-After"] = _ref("Retry-After-Required")
            elif status == "503":
                headers["Retry-After"] = _ref("Retry-After")
            # 401 stops before the throttle counts the request, so it carries no rate-limit headers.
            if rate_limited and status != "401":
                headers.update({name: _ref(name) for name in _RATE_LIMIT_HEADERS})
            if replayed and status[0] in "24" and status != "401":
                headers[REPLAY_HEADER] = _ref(REPLAY_HEADER)
            if not headers:
                del response["headers"]
        return responses


def postprocess(result: dict[str, Any], generator: Any, **kwargs: Any) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS: the header components named above, and the examples of config.schema_examples."""
    result.setdefault("components", {})["headers"] = HEADERS
    paths = {}
    for path, path_item in result.get("paths", {}).items():
        renamed = _named_path(path)
        for operation in path_item.values():
            _rename_path_parameter(operation, renamed)
            _add_examples(operation, EXAMPLES.get(operation.get("operationId"), {}))
        paths[renamed] = path_item
    result["paths"] = paths
    return result


# `{name}` after `/queues` or `/schedules` is documented as `{queue_name}` / `{schedule_name}`: the same URL on
# the wire, but a generated client no longer meets two parameters called `name` on `GET /v1/queues/{…}/jobs`
# (the path one and the job-name filter), which it would rename `name_path` and `name_query`.
_NAMED_RESOURCES = {"queues": "queue_name", "schedules": "schedule_name"}


def _named_path(path: str) -> str:
    for resource, parameter in _NAMED_RESOURCES.items():
        path = path.replace(f"/{resource}/{{name}}", f"/{resource}/{{{parameter}}}")
    return path


def _rename_path_parameter(operation: dict[str, Any], renamed_path: str) -> None:
    new_name = next((n for n in _NAMED_RESOURCES.values() if f"{{{n}}}" in renamed_path), None)
    for parameter in operation.get("parameters", []):
        if new_name and parameter["in"] == "path" and parameter["name"] == "name":
            parameter["name"] = new_name


def _add_examples(operation: dict[str, Any], examples: dict[str, Any]) -> None:
    for key, value in examples.items():
        holder = operation.get("requestBody") if key == "request" else operation["responses"].get(key)
        media = (holder or {}).get("content", {}).get("application/json")
        if media is None:
            raise ValueError(f"{operation['operationId']}: no JSON {key} to attach an example to")
        media["example"] = value
