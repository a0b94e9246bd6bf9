import pytest
from django.contrib.auth import get_user_model

from accounts.models import ApiKey, Workspace
from accounts.services import api_key_create
from billing.services import quota_consume
from tests.conftest import make_client

pytestmark = pytest.mark.django_db


def test_staff_see_plan_usage_subscription_and_keys_but_never_hashes(staff_client, workspace):
    quota_consume(workspace=workspace, count=42)
    Workspace.objects.filter(pk=workspace.pk).update(
        stripe_customer_id="cus_123", subscription_status="active"
    )
    key = ApiKey.objects.get(workspace=workspace)
    listing = staff_client.get("/admin/accounts/workspace/")
    assert listing.status_code == 200
    assert "42 / 10,000" in listing.content.decode()
    page = staff_client.get(f"/admin/accounts/workspace/{workspace.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert key.prefix in html and "cus_123" in html and "42 / 10,000" in html
    assert key.key_hash not in html
    key_page = staff_client.get(f"/admin/accounts/apikey/{key.pk}/change/")
    assert key_page.status_code == 200 and key.key_hash not in key_page.content.decode()
    for path in (
        "/admin/accounts/plan/",
        "/admin/billing/usagecounter/",
        "/admin/billing/stripeevent/",
        "/admin/accounts/apikey/",
    ):
        assert staff_client.get(path).status_code == 200, path


def test_staff_change_a_plan(staff_client, workspace):
    page = staff_client.get(f"/admin/accounts/workspace/{workspace.pk}/change/")
    assert page.status_code == 200
    data = {
        "name": "acme",
        "owner": "",
        "plan": "team",
        "api_keys-TOTAL_FORMS": "1",
        "api_keys-INITIAL_FORMS": "1",
        "api_keys-MIN_NUM_FORMS": "0",
        "api_keys-MAX_NUM_FORMS": "1000",
        "api_keys-0-id": ApiKey.objects.get(workspace=workspace).pk,
        "api_keys-0-workspace": workspace.pk,
        "usage_counters-TOTAL_FORMS": "0",
        "usage_counters-INITIAL_FORMS": "0",
        "usage_counters-MIN_NUM_FORMS": "0",
        "usage_counters-MAX_NUM_FORMS": "0",
    }
    response = staff_client.post(f"/admin/accounts/workspace/{workspace.pk}/change/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    workspace.refresh_from_db()
    assert workspace.plan_id == "team"


def test_staff_revoke_keys_with_an_action(staff_client, workspace, api_key):
    extra = api_key_create(workspace=workspace, name="extra")
    response = staff_client.post(
        "/admin/accounts/apikey/", {"action": "revoke_keys", "_selected_action": [extra.key.pk]}
    )
    assert response.status_code == 302
    assert ApiKey.objects.get(pk=extra.key.pk).revoked_at is not None
    assert make_client(extra.raw).get("/v1/auth/me").status_code == 401
    assert make_client(api_key).get("/v1/auth/me").status_code == 200


def test_staff_revoke_every_key_of_a_workspace(staff_client, workspace, api_key, other_workspace_and_key):
    response = staff_client.post(
        "/admin/accounts/workspace/", {"action": "revoke_all_keys", "_selected_action": [workspace.pk]}
    )
    assert response.status_code == 302
    assert not ApiKey.objects.filter(workspace=workspace, revoked_at__isnull=True).exists()
    assert make_client(api_key).get("/v1/auth/me").status_code == 401
    assert make_client(other_workspace_and_key[1].raw).get("/v1/auth/me").status_code == 200


def test_non_staff_cannot_use_the_admin(client, workspace):
    user = get_user_model().objects.create_user(username="u", password="pw-123456")
    client.force_login(user)
    response = client.get("/admin/accounts/workspace/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
