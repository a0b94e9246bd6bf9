"""Dashboard views without a browser: CSRF, workspace isolation and the event feed under WSGI."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.services import workspace_create
from queues.models import Queue
from tests.factories import make_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(workspace_and_key) -> Client:
    client = Client()
    response = client.post("/login", {"method": "api_key", "api_key": workspace_and_key[1].raw})
    assert response.status_code == 302 and response["Location"] == "/"
    return client


def test_actions_need_the_csrf_token(workspace, workspace_and_key):
    make_queue(workspace, "emails")
    client = Client(enforce_csrf_checks=True)
    page = client.get("/login")
    token = page.cookies["csrftoken"].value
    login = client.post(
        "/login", {"method": "api_key", "api_key": workspace_and_key[1].raw, "csrfmiddlewaretoken": token}
    )
    assert login.status_code == 302
    assert client.post("/queues/emails/pause").status_code == 403
    assert Queue.objects.get(name="emails").paused is False


def test_another_workspaces_queue_is_not_found_and_untouched(signed_in, plans):
    other, _ = workspace_create(name="other")
    theirs = make_queue(other, "theirs")
    response = signed_in.post("/queues/theirs/pause", follow=True)
    assert "Queue &#x27;theirs&#x27; not found." in response.content.decode()
    theirs.refresh_from_db()
    assert theirs.paused is False
    assert signed_in.get("/queues/theirs/dlq").status_code == 404


def test_login_next_never_leaves_the_site(workspace_and_key):
    client = Client()
    response = client.post(
        "/login", {"method": "api_key", "api_key": workspace_and_key[1].raw, "next": "https://evil.example/"}
    )
    assert response.status_code == 302 and response["Location"] == "/"


def test_event_feed_under_wsgi_answers_204(signed_in):
    # gunicorn would hold a thread for the endless stream; EventSource stops on 204 and pages poll instead.
    assert signed_in.get("/events").status_code == 204
    assert Client().get("/events").status_code == 401
