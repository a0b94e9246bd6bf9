"""config.fastjson and the API's renderer: orjson's speed, the standard library's values and errors."""

from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal

import pytest
from django.utils.translation import gettext_lazy
from rest_framework import renderers

from config import fastjson
from config.renderers import JSONRenderer
from tests.factories import make_queue

# Each of these decodes to something else, or fails differently, in orjson alone.
TRICKY = [
    b'{"n": 123456789012345678901234567890}',
    b"[-9223372036854775809, 18446744073709551616, 9223372036854775807]",
    b'{"id": "1234567890123456789012"}',
    b"[1e400]",
    b'"\\ud800"',
    b'{"a": 1, "a": 2}',
    b"[1e-05, 0.1, -0.0, 1E2, 5e-324]",
    b'"\\u2028 \\u0000 \xc3\xa9"',
]


@pytest.mark.parametrize("text", TRICKY)
def test_loads_gives_what_json_gives(text):
    for data in (text, text.decode()):
        assert repr(fastjson.loads(data)) == repr(json.loads(data))


@pytest.mark.parametrize("text", [b"[NaN]", b'{"a": Infinity}', b"[1,]", b"[" * 2000 + b"]" * 2000])
def test_loads_fails_as_json_fails(text):
    try:
        expected: BaseException | None = None
        json.loads(text, parse_constant=_refuse)
    except (ValueError, RecursionError) as exc:
        expected = exc
    assert expected is not None
    with pytest.raises(type(expected)):
        fastjson.loads(text, parse_constant=_refuse)


def _refuse(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


@pytest.mark.parametrize(
    "value",
    [
        {"big": 2**70, "neg": -(2**64), "max": 2**63 - 1},
        {1: "int key", "s": "é\u2028", "nul": "\x00"},
        ["\ud800 lone surrogate"],
        {"nested": [[[{"f": 0.1, "e": 1e22}]]]},
    ],
)
def test_dumps_is_json_with_the_same_values(value):
    out = fastjson.dumps(value)
    assert json.loads(out) == json.loads(json.dumps(value))
    assert ", " not in out and ": " not in out


def test_dumps_writes_nan_as_null_not_as_invalid_json():
    assert fastjson.dumps([math.nan, math.inf]) == "[null,null]"


def test_the_renderer_writes_drfs_bytes_for_drfs_types():
    data = {
        "at": dt.datetime(2026, 1, 15, 12, 0, 0, 123456, tzinfo=dt.UTC),
        "day": dt.date(2026, 1, 15),
        "amount": Decimal("12.50"),
        "label": gettext_lazy("Not found."),
        "line": "a\u2028b\u2029c é",
        "big": 2**70,
        "nested": {"list": [1, None, True, "x"]},
    }
    assert JSONRenderer().render(data) == renderers.JSONRenderer().render(data)


def test_the_renderer_still_indents_on_request():
    body = JSONRenderer().render({"a": [1]}, "application/json; indent=2")
    assert body == b'{\n  "a": [\n    1\n  ]\n}'


@pytest.mark.django_db
def test_integers_wider_than_64_bits_keep_every_digit_through_enqueue_claim_and_get(api_client, workspace):
    make_queue(workspace, "wide")
    payload = {"id": 2**70 + 1, "neg": -(10**25) - 7, "edge": 2**63, "f": 1e-05, "s": "\u2028é"}
    created = api_client.post("/v1/queues/wide/jobs", {"payload": payload}, format="json")
    assert created.status_code == 201, created.content
    assert json.loads(created.content)["payload"] == payload
    claimed = api_client.post("/v1/queues/wide/jobs/claim", {"limit": 1}, format="json")
    assert claimed.status_code == 200, claimed.content
    [job] = json.loads(claimed.content)["data"]
    assert job["payload"] == payload
    fetched = api_client.get(f"/v1/jobs/{job['id']}")
    assert json.loads(fetched.content)["payload"] == payload


@pytest.mark.django_db
@pytest.mark.parametrize("body", [b'{"payload": NaN}', b'{"payload": -Infinity}', b'{"payload": [1,]}'])
def test_bodies_json_refuses_are_still_400(api_client, workspace, body):
    make_queue(workspace, "strict")
    response = api_client.generic("POST", "/v1/queues/strict/jobs", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] in {"BAD_REQUEST", "PARSE_ERROR", "VALIDATION_ERROR"}
