"""Issue 18: the hand-written client (clients/python) matches the server's OpenAPI document.

Every public method of `Spindle` names the operations it calls (spindle_client.operations); each must exist in
the document with that method, path and operationId, declare the query and header parameters the client sends
and the body fields it can send, and answer (2xx JSON) the component its model mirrors: the model's fields lie
within the component's properties and cover its required ones, through the list envelope for lists.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator
from spindle_client import Spindle
from spindle_client.operations import Operation


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    """The document as `GET /doc` serves it (the same generator, without a request)."""
    return SchemaGenerator().get_schema(request=None, public=True)


def client_operations() -> list[tuple[str, Operation]]:
    found = []
    for name, method in inspect.getmembers(Spindle, inspect.isfunction):
        if name.startswith("_") or name == "close":
            continue
        operations = getattr(method, "operations", None)
        assert operations, (
            f"Spindle.{name} calls the API but names no operation (spindle_client.operations.calls)"
        )
        found += [(name, op) for op in operations]
    return found


def resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def response_component(document: dict[str, Any], op: Operation) -> dict[str, Any]:
    """The component of the first 2xx JSON answer, through the list envelope when the route is a list."""
    responses = document["paths"][op.path][op.method.lower()]["responses"]
    success = min(status for status in responses if status.startswith("2"))
    component = resolve(document, responses[success]["content"]["application/json"]["schema"])
    if op.paginated:
        assert set(component.get("required", ())) == {"data", "next_cursor"}, (
            f"{op.operation_id}: not an envelope"
        )
        assert component["properties"]["data"]["type"] == "array"
        component = resolve(document, component["properties"]["data"]["items"])
    return component


def test_every_client_method_names_a_documented_operation(document):
    operations = client_operations()
    assert len(operations) >= 12
    for name, op in operations:
        documented = document["paths"].get(op.path, {}).get(op.method.lower())
        assert documented, f"Spindle.{name}: {op.method} {op.path} is not in the document"
        assert documented["operationId"] == op.operation_id, f"Spindle.{name}: {documented['operationId']}"
        parameters = {(p["in"], p["name"]) for p in documented.get("parameters", ())}
        for query in op.query:
            assert ("query", query) in parameters, f"{op.operation_id}: no query parameter {query}"
        for header in op.headers:
            assert ("header", header) in parameters, f"{op.operation_id}: no header {header}"
        path_params = {p for kind, p in parameters if kind == "path"}
        assert path_params == set(op.path.replace("}", "{").split("{")[1::2]), op.operation_id


def test_request_bodies_send_only_documented_fields(document):
    for _, op in client_operations():
        if not op.body:
            continue
        documented = document["paths"][op.path][op.method.lower()]["requestBody"]["content"][
            "application/json"
        ]
        properties = resolve(document, documented["schema"])["properties"]
        assert set(op.body) <= set(properties), f"{op.operation_id}: {set(op.body) - set(properties)}"


def test_response_models_mirror_their_components(document):
    for _, op in client_operations():
        if op.model is None:
            continue
        component = response_component(document, op)
        fields = {f.name for f in dataclasses.fields(op.model)}
        properties = set(component["properties"])
        assert fields <= properties, (
            f"{op.model.__name__} ({op.operation_id}): {fields - properties} undocumented"
        )
        missing = set(component.get("required", ())) - fields
        assert not missing, f"{op.model.__name__} ({op.operation_id}) lacks required {missing}"
