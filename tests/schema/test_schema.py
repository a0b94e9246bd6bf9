"""Issue 18 (schema): the OpenAPI document validates without warnings, names its operations one way, declares
what every route can answer, and each example in it matches its own schema."""

from __future__ import annotations

import copy
import re
from io import StringIO
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from jsonschema import Draft4Validator

from config.schema_examples import EXAMPLES

METHODS = ("get", "put", "patch", "post", "delete")
OPERATION_ID = re.compile(r"^[a-z]+(_[a-z]+)*$")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    return yaml.safe_load(out.getvalue())


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def test_list_routes_answer_the_envelope_object(document):
    lists = {}
    for path, method, operation in _operations(document):
        content = operation["responses"].get("200", {}).get("content", {}).get("application/json")
        if content is None:
            continue
        schema = content["schema"]
        target = (
            document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
            if "$ref" in schema
            else schema
        )
        if "next_cursor" in target.get("properties", {}):
            lists[f"{method.upper()} {path}"] = schema
    # All 18 keyset-paginated routes; each one is the object, never an array of envelopes.
    assert len(lists) >= 18, sorted(lists)
    assert all("$ref" in schema for schema in lists.values()), lists


def test_operation_ids_follow_one_scheme(document):
    ids = [operation["operationId"] for _, _, operation in _operations(document)]
    assert len(ids) == len(set(ids))
    assert all(OPERATION_ID.match(i) and not i.startswith("v1_") for i in ids), ids
    # Action routes are named by their path, without drf-spectacular's `_create` suffix.
    assert not [i for i in ids if i.endswith("_create") and i.count("_") > 1], ids
    by_route = {(p, m): o["operationId"] for p, m, o in _operations(document)}
    assert by_route[("/v1/queues", "get")] == "queues_list"
    assert by_route[("/v1/queues/{queue_name}/jobs", "post")] == "jobs_enqueue"
    assert by_route[("/v1/queues/{queue_name}/jobs/{job_id}/cancel", "post")] == "queues_jobs_cancel"


def test_tags_security_and_parameters(document):
    for path, method, operation in _operations(document):
        label = f"{method.upper()} {path}"
        assert operation["tags"] and "v1" not in operation["tags"], label
        security = operation.get("security", [])
        assert len(security) == len({tuple(sorted(s)) for s in security}), label
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] in ("path", "query")]
        assert len(names) == len(set(names)), label  # no `name_path` / `name_query` in a generated client


def test_implicit_responses_and_headers(document):
    for path, method, operation in _operations(document):
        if not path.startswith("/v1/"):
            continue
        responses = operation["responses"]
        label = f"{method.upper()} {path}"
        assert "503" in responses, label
        if operation.get("security"):
            assert responses["429"]["headers"]["Retry-After"] == {
                "$ref": "#/components/headers/Retry-After-Required"
            }
            success = next(r for code, r in responses.items() if code.startswith("2"))
            assert "X-RateLimit-Remaining" in success["headers"], label
        idempotent = any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", []))
        if idempotent:
            assert {"400", "409", "422"} <= set(responses), label
            created = next(r for code, r in responses.items() if code.startswith("2"))
            assert "Idempotent-Replayed" in created["headers"], label
    assert set(document["components"]["headers"]) >= {
        "X-RateLimit-Limit",
        "Retry-After",
        "Idempotent-Replayed",
    }


def _json_schema(node: Any) -> Any:
    """OpenAPI 3.0 schema -> JSON Schema draft 4: `nullable: true` becomes a `null` alternative."""
    if isinstance(node, list):
        return [_json_schema(v) for v in node]
    if not isinstance(node, dict):
        return node
    converted = {k: _json_schema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable"):
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


def test_examples_match_their_schemas(document):
    components = _json_schema(copy.deepcopy(document["components"]))
    checked = 0
    for _, _, operation in _operations(document):
        holders = [operation.get("requestBody", {}), *operation["responses"].values()]
        for holder in holders:
            media = holder.get("content", {}).get("application/json", {})
            if "example" not in media:
                continue
            schema = {**_json_schema(media["schema"]), "components": components}
            errors = [e.message for e in Draft4Validator(schema).iter_errors(media["example"])]
            assert not errors, (operation["operationId"], errors)
            checked += 1
    assert checked == sum(len(v) for v in EXAMPLES.values())


_VOLATILE = {"id", "created_at", "updated_at", "run_at", "next_run_at", "signing_secret"}


@pytest.mark.django_db
def test_examples_are_what_the_server_answers(api_client):
    """The documented requests, sent in order, get the documented answers (ids, secrets and times aside)."""
    routes = [
        ("queues_create", "/v1/queues"),
        ("jobs_enqueue", "/v1/queues/reports/jobs"),
        ("schedules_create", "/v1/schedules"),
    ]
    for operation_id, url in routes:
        example = EXAMPLES[operation_id]
        response = api_client.post(url, example["request"], format="json")
        assert response.status_code == 201, response.json()
        answered = response.json()
        assert set(answered) == set(example["201"]), operation_id
        differ = {k for k in answered if k not in _VOLATILE and answered[k] != example["201"][k]}
        assert not differ, (operation_id, {k: answered[k] for k in differ})
