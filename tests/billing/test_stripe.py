"""Stripe is faked at its HTTP boundary (a local server); webhook bodies are signed the way Stripe signs them."""

import hashlib
import hmac
import json
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl

import pytest

from accounts.models import Workspace
from billing.models import StripeEvent
from tests.endpoints import serving

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "whsec_test_secret"


class FakeStripe:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.fail = False
        self.counter = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                fake.requests.append((self.path, dict(parse_qsl(body)), dict(self.headers)))
                fake.counter += 1
                n = fake.counter
                if fake.fail:
                    return self._send(500, {"error": {"type": "api_error", "message": "boom"}})
                if self.path == "/v1/customers":
                    return self._send(200, {"id": f"cus_fake{n}", "object": "customer"})
                if self.path == "/v1/checkout/sessions":
                    return self._send(
                        200,
                        {
                            "id": f"cs_test_{n}",
                            "object": "checkout.session",
                            "url": f"https://checkout.stripe.test/c/pay/cs_test_{n}",
                        },
                    )
                if self.path == "/v1/billing_portal/sessions":
                    return self._send(
                        200,
                        {
                            "id": f"bps_{n}",
                            "object": "billing_portal.session",
                            "url": f"https://billing.stripe.test/p/session/{n}",
                        },
                    )
                return self._send(404, {"error": {"type": "invalid_request_error", "message": "no route"}})

            def _send(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_fake")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.handler = Handler
        self.base = ""

    def paths(self) -> list[str]:
        return [path for path, _, _ in self.requests]


@pytest.fixture
def fake_stripe():
    fake = FakeStripe()
    with serving(fake.handler) as server:
        fake.base = f"http://127.0.0.1:{server.server_address[1]}"
        yield fake


@pytest.fixture
def stripe_on(settings, fake_stripe):
    settings.STRIPE_SECRET_KEY = "sk_test_fake"
    settings.STRIPE_API_BASE = fake_stripe.base
    settings.STRIPE_WEBHOOK_SECRET = WEBHOOK_SECRET
    settings.STRIPE_PRICE_PRO = "price_pro"
    settings.STRIPE_PRICE_TEAM = "price_team"
    return fake_stripe


@pytest.fixture
def stripe_off(settings):
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""


def sign(body: str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    v1 = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={v1}"


def post_event(client, event: dict, **kwargs):
    body = json.dumps(event)
    signature = kwargs.pop("signature", None) or sign(body)
    return client.post(
        "/v1/billing/stripe-webhook",
        body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
        **kwargs,
    )


def event(event_id: str, type_: str, obj: dict, created: int | None = None) -> dict:
    return {
        "id": event_id,
        "object": "event",
        "type": type_,
        "created": created or int(time.time()),
        "data": {"object": obj},
        "livemode": False,
        "api_version": "2024-06-20",
    }


def subscription(
    sub_id: str, customer: str, price: str, status: str = "active", workspace_id: str | None = None
):
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "metadata": {"workspace_id": workspace_id} if workspace_id else {},
        "items": {"object": "list", "data": [{"id": "si_1", "price": {"id": price, "object": "price"}}]},
    }


# --- not configured --------------------------------------------------------------------------------


def test_billing_routes_without_stripe_are_503(api_client, anon_client, stripe_off, workspace):
    for path, body in (("/v1/billing/checkout", {"plan": "pro"}), ("/v1/billing/portal", None)):
        response = api_client.post(path, body, format="json")
        assert response.status_code == 503, path
        assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert "not configured" in response.json()["error"]["message"]
    response = post_event(anon_client, event("evt_1", "customer.subscription.deleted", {}))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert StripeEvent.objects.count() == 0
    status = api_client.get("/v1/billing/status")
    assert status.status_code == 200
    assert status.json() == {
        "billing_enabled": False,
        "plan": "free",
        "subscription_status": None,
        "has_customer": False,
        "has_subscription": False,
    }


# --- checkout and portal ---------------------------------------------------------------------------


def test_checkout_creates_the_customer_once_and_a_session(api_client, workspace, stripe_on):
    response = api_client.post("/v1/billing/checkout", {"plan": "pro"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["url"].startswith("https://checkout.stripe.test/c/pay/cs_test_")
    assert stripe_on.paths() == ["/v1/customers", "/v1/checkout/sessions"]
    _, customer, headers = stripe_on.requests[0]
    assert customer["metadata[workspace_id]"] == workspace.id
    assert headers["Authorization"] == "Bearer sk_test_fake"
    assert headers.get("Idempotency-Key") == f"spindle-customer-{workspace.id}"
    _, session, _ = stripe_on.requests[1]
    assert session["mode"] == "subscription"
    assert session["customer"] == "cus_fake1"
    assert session["line_items[0][price]"] == "price_pro"
    assert session["client_reference_id"] == workspace.id
    assert session["metadata[plan]"] == "pro"
    workspace.refresh_from_db()
    assert workspace.stripe_customer_id == "cus_fake1"
    assert workspace.plan_id == "free"  # only the webhook changes the plan

    again = api_client.post("/v1/billing/checkout", {"plan": "team"}, format="json")
    assert again.status_code == 200
    assert stripe_on.paths()[2:] == ["/v1/checkout/sessions"]  # the customer is reused
    assert stripe_on.requests[2][1]["line_items[0][price]"] == "price_team"


def test_checkout_with_an_idempotency_key_creates_one_session(api_client, stripe_on):
    headers = {"HTTP_IDEMPOTENCY_KEY": "upgrade-1"}
    first = api_client.post("/v1/billing/checkout", {"plan": "pro"}, format="json", **headers)
    again = api_client.post("/v1/billing/checkout", {"plan": "pro"}, format="json", **headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert stripe_on.paths().count("/v1/checkout/sessions") == 1
    reused = api_client.post("/v1/billing/checkout", {"plan": "team"}, format="json", **headers)
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_checkout_customer_of_a_registered_user_has_its_email(anon_client, plans, stripe_on, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    body = anon_client.post(
        "/v1/auth/register", {"email": "pay@example.com", "password": "pw-123456", "name": "P"}, format="json"
    ).json()
    anon_client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['tokens']['access']}")
    assert anon_client.post("/v1/billing/checkout", {"plan": "pro"}, format="json").status_code == 200
    assert stripe_on.requests[0][1]["email"] == "pay@example.com"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"plan": "free"}, "plan"),
        ({"plan": "platinum"}, "plan"),
        ({}, "plan"),
        ({"plan": "pro", "seats": 2}, "seats"),
    ],
)
def test_checkout_validation(api_client, workspace, stripe_on, body, field):
    response = api_client.post("/v1/billing/checkout", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert field in response.json()["error"]["details"]
    assert stripe_on.requests == []


def test_checkout_for_a_plan_without_a_price_is_400(api_client, workspace, stripe_on, settings):
    settings.STRIPE_PRICE_TEAM = ""
    response = api_client.post("/v1/billing/checkout", {"plan": "team"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert stripe_on.requests == []


def test_checkout_with_an_active_subscription_is_409(api_client, workspace, stripe_on):
    Workspace.objects.filter(pk=workspace.pk).update(
        plan_id="pro",
        stripe_customer_id="cus_x",
        stripe_subscription_id="sub_x",
        subscription_status="active",
    )
    response = api_client.post("/v1/billing/checkout", {"plan": "team"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"
    assert stripe_on.requests == []


def test_portal(api_client, workspace, stripe_on):
    response = api_client.post("/v1/billing/portal")
    assert response.status_code == 200, response.content
    assert response.json()["url"].startswith("https://billing.stripe.test/p/session/")
    assert stripe_on.paths() == ["/v1/customers", "/v1/billing_portal/sessions"]
    assert stripe_on.requests[1][1]["customer"] == "cus_fake1"
    assert api_client.post("/v1/billing/portal").status_code == 200
    assert stripe_on.paths()[2:] == ["/v1/billing_portal/sessions"]


def test_stripe_failure_is_503_and_saves_nothing(api_client, workspace, stripe_on):
    stripe_on.fail = True
    response = api_client.post("/v1/billing/checkout", {"plan": "pro"}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert "boom" not in response.content.decode()
    workspace.refresh_from_db()
    assert workspace.stripe_customer_id == ""


def test_billing_routes_need_auth(anon_client, plans, stripe_on):
    for method, path in (
        ("get", "/v1/billing/status"),
        ("post", "/v1/billing/checkout"),
        ("post", "/v1/billing/portal"),
    ):
        response = getattr(anon_client, method)(
            path, {"plan": "pro"} if path.endswith("checkout") else None, format="json"
        )
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "UNAUTHORIZED"


# --- webhooks --------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["wrong-secret", "tampered", "missing", "stale", "garbage"])
def test_webhook_signature_is_verified(anon_client, workspace, stripe_on, kind):
    evt = event("evt_sig", "customer.subscription.deleted", subscription("sub_1", "cus_1", "price_pro"))
    body = json.dumps(evt)
    headers = {
        "wrong-secret": sign(body, secret="whsec_other"),
        "tampered": sign(body.replace("sub_1", "sub_2")),
        "stale": sign(body, timestamp=int(time.time()) - 3600),
        "garbage": "nonsense",
    }
    kwargs = {} if kind == "missing" else {"HTTP_STRIPE_SIGNATURE": headers[kind]}
    response = anon_client.post("/v1/billing/stripe-webhook", body, content_type="application/json", **kwargs)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BAD_REQUEST"
    assert StripeEvent.objects.count() == 0


def test_checkout_completed_then_subscription_lifecycle(anon_client, workspace, stripe_on):
    Workspace.objects.filter(pk=workspace.pk).update(stripe_customer_id="cus_42")
    t0 = int(time.time()) - 100
    completed = event(
        "evt_1",
        "checkout.session.completed",
        {
            "id": "cs_1",
            "object": "checkout.session",
            "customer": "cus_42",
            "subscription": "sub_42",
            "client_reference_id": workspace.id,
            "payment_status": "paid",
            "metadata": {"workspace_id": workspace.id, "plan": "pro"},
        },
        created=t0,
    )
    response = post_event(anon_client, completed)
    assert response.status_code == 200, response.content
    assert response.json() == {"received": True, "duplicate": False}
    workspace.refresh_from_db()
    assert (workspace.plan_id, workspace.stripe_subscription_id, workspace.subscription_status) == (
        "pro",
        "sub_42",
        "active",
    )

    upgraded = event(
        "evt_2",
        "customer.subscription.updated",
        subscription("sub_42", "cus_42", "price_team"),
        created=t0 + 10,
    )
    assert post_event(anon_client, upgraded).status_code == 200
    workspace.refresh_from_db()
    assert workspace.plan_id == "team" and workspace.subscription_status == "active"

    failed = event(
        "evt_3",
        "invoice.payment_failed",
        {"id": "in_1", "object": "invoice", "customer": "cus_42", "subscription": "sub_42"},
        created=t0 + 20,
    )
    assert post_event(anon_client, failed).status_code == 200
    workspace.refresh_from_db()
    assert workspace.subscription_status == "past_due" and workspace.plan_id == "team"

    deleted = event(
        "evt_4",
        "customer.subscription.deleted",
        subscription("sub_42", "cus_42", "price_team", status="canceled"),
        created=t0 + 30,
    )
    assert post_event(anon_client, deleted).status_code == 200
    workspace.refresh_from_db()
    assert (workspace.plan_id, workspace.stripe_subscription_id, workspace.subscription_status) == (
        "free",
        "",
        "canceled",
    )
    assert list(StripeEvent.objects.order_by("id").values_list("event_id", "workspace_id")) == [
        (f"evt_{i}", workspace.id) for i in range(1, 5)
    ]


def test_subscription_created_finds_the_workspace_by_customer(anon_client, workspace, stripe_on):
    Workspace.objects.filter(pk=workspace.pk).update(stripe_customer_id="cus_7")
    created = event("evt_c", "customer.subscription.created", subscription("sub_7", "cus_7", "price_pro"))
    assert post_event(anon_client, created).status_code == 200
    workspace.refresh_from_db()
    assert (workspace.plan_id, workspace.stripe_subscription_id) == ("pro", "sub_7")


def test_unpaid_subscription_falls_back_to_free(anon_client, workspace, stripe_on):
    Workspace.objects.filter(pk=workspace.pk).update(
        stripe_customer_id="cus_7", plan_id="pro", stripe_subscription_id="sub_7"
    )
    updated = event(
        "evt_u", "customer.subscription.updated", subscription("sub_7", "cus_7", "price_pro", status="unpaid")
    )
    assert post_event(anon_client, updated).status_code == 200
    workspace.refresh_from_db()
    assert (workspace.plan_id, workspace.subscription_status) == ("free", "unpaid")


def test_repeated_event_is_applied_once(anon_client, workspace, stripe_on):
    Workspace.objects.filter(pk=workspace.pk).update(stripe_customer_id="cus_9")
    created = event("evt_dup", "customer.subscription.created", subscription("sub_9", "cus_9", "price_pro"))
    assert post_event(anon_client, created).json() == {"received": True, "duplicate": False}
    # Staff move the workspace meanwhile; a redelivery of the old event must not undo that.
    Workspace.objects.filter(pk=workspace.pk).update(plan_id="enterprise")
    again = post_event(anon_client, created)
    assert again.status_code == 200
    assert again.json() == {"received": True, "duplicate": True}
    workspace.refresh_from_db()
    assert workspace.plan_id == "enterprise"
    assert StripeEvent.objects.filter(event_id="evt_dup").count() == 1


def test_out_of_order_events_keep_the_newest_state(anon_client, workspace, stripe_on):
    Workspace.objects.filter(pk=workspace.pk).update(stripe_customer_id="cus_5")
    now = int(time.time())
    newer = event(
        "evt_new", "customer.subscription.updated", subscription("sub_5", "cus_5", "price_team"), created=now
    )
    older = event(
        "evt_old",
        "customer.subscription.updated",
        subscription("sub_5", "cus_5", "price_pro"),
        created=now - 60,
    )
    assert post_event(anon_client, newer).status_code == 200
    assert post_event(anon_client, older).status_code == 200
    workspace.refresh_from_db()
    assert workspace.plan_id == "team"


def test_deleting_a_replaced_subscription_keeps_the_plan(anon_client, workspace, stripe_on):
    Workspace.objects.filter(pk=workspace.pk).update(
        stripe_customer_id="cus_5",
        stripe_subscription_id="sub_new",
        plan_id="team",
        subscription_status="active",
    )
    deleted = event(
        "evt_d",
        "customer.subscription.deleted",
        subscription("sub_old", "cus_5", "price_pro", status="canceled"),
    )
    assert post_event(anon_client, deleted).status_code == 200
    workspace.refresh_from_db()
    assert (workspace.plan_id, workspace.stripe_subscription_id) == ("team", "sub_new")


def test_unknown_workspace_and_unknown_types_are_acknowledged(anon_client, workspace, stripe_on):
    orphan = event("evt_o", "customer.subscription.updated", subscription("sub_x", "cus_nobody", "price_pro"))
    assert post_event(anon_client, orphan).status_code == 200
    other = event("evt_t", "charge.succeeded", {"id": "ch_1", "object": "charge", "customer": "cus_nobody"})
    assert post_event(anon_client, other).status_code == 200
    assert set(StripeEvent.objects.values_list("event_id", "workspace_id")) == {("evt_o", ""), ("evt_t", "")}
    workspace.refresh_from_db()
    assert workspace.plan_id == "free"


def test_webhook_ignores_bearer_credentials(anon_client, workspace, stripe_on):
    Workspace.objects.filter(pk=workspace.pk).update(stripe_customer_id="cus_3")
    evt = event("evt_b", "customer.subscription.created", subscription("sub_3", "cus_3", "price_pro"))
    response = post_event(anon_client, evt, HTTP_AUTHORIZATION="Bearer nonsense")
    assert response.status_code == 200
    assert not response.has_header("X-RateLimit-Limit")


def test_billing_status_after_subscribing(api_client, workspace, stripe_on):
    Workspace.objects.filter(pk=workspace.pk).update(
        stripe_customer_id="cus_1",
        stripe_subscription_id="sub_1",
        plan_id="pro",
        subscription_status="past_due",
    )
    response = api_client.get("/v1/billing/status")
    assert response.status_code == 200
    assert response.json() == {
        "billing_enabled": True,
        "plan": "pro",
        "subscription_status": "past_due",
        "has_customer": True,
        "has_subscription": True,
    }
