"""Seed 003: `consecutive_failures_threshold` is 1-100 and `cooldown_minutes` 0-10,080 (one week)."""

from __future__ import annotations

import pytest

from alerts.models import Alert

BODY = {"name": "ops", "channel": "email", "target": "ops@example.com"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("consecutive_failures_threshold", 0),
        ("consecutive_failures_threshold", 101),
        ("consecutive_failures_threshold", 1000),
        ("cooldown_minutes", -1),
        ("cooldown_minutes", 10_081),
        ("cooldown_minutes", 43_200),
    ],
)
def test_out_of_range_is_400(api_client, field, value):
    response = api_client.post("/v1/alerts", {**BODY, field: value}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "VALIDATION_ERROR" and field in error["details"]
    assert not Alert.objects.exists()


@pytest.mark.django_db
def test_bounds_are_inclusive_and_checked_on_update(api_client):
    created = api_client.post(
        "/v1/alerts",
        {**BODY, "consecutive_failures_threshold": 100, "cooldown_minutes": 10_080},
        format="json",
    )
    assert created.status_code == 201, created.content
    alert_id = created.json()["id"]
    low = api_client.patch(
        f"/v1/alerts/{alert_id}", {"consecutive_failures_threshold": 1, "cooldown_minutes": 0}, format="json"
    )
    assert low.status_code == 200, low.content
    for field, value in (("consecutive_failures_threshold", 101), ("cooldown_minutes", 10_081)):
        for method in (api_client.patch, api_client.put):
            body = {field: value} if method == api_client.patch else {**BODY, field: value}
            response = method(f"/v1/alerts/{alert_id}", body, format="json")
            assert response.status_code == 400 and field in response.json()["error"]["details"]
    alert = Alert.objects.get(pk=alert_id)
    assert (alert.consecutive_failures_threshold, alert.cooldown_minutes) == (1, 0)


@pytest.mark.django_db
def test_schema_documents_the_bounds(api_client):
    schemas = api_client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("AlertInRequest", "PatchedAlertInRequest"):
        props = schemas[name]["properties"]
        assert (
            props["consecutive_failures_threshold"]["minimum"],
            props["consecutive_failures_threshold"]["maximum"],
        ) == (1, 100)
        assert (props["cooldown_minutes"]["minimum"], props["cooldown_minutes"]["maximum"]) == (0, 10_080)
