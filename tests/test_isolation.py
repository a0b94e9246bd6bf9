"""The isolation matrix: every /v1 route × {own workspace, other workspace, no key}.

Routes are read from the URL resolver, so a new route joins the matrix by existing. Another workspace's object
must answer 404 (never 403, never the object); no key must answer 401; the owner must not get a 404.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from jobs.models import Execution, Worker
from tests.factories import JobFactory, ScheduleFactory, make_queue

PUBLIC = {
    "v1/health",
    "v1/auth/register",
    "v1/auth/register-anonymous",
    "v1/auth/login",
    "v1/auth/refresh",
    "v1/billing/stripe-webhook",
}
PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")


def _walk(patterns, prefix=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def _methods(callback) -> list[str]:
    actions = getattr(callback, "actions", None)
    if actions:
        return sorted(m.upper() for m in actions)
    cls = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    if cls is None:
        return ["GET"]
    return sorted(
        m.upper() for m in cls.http_method_names if m not in {"options", "head", "trace"} and hasattr(cls, m)
    )


def v1_routes() -> list[tuple[str, str]]:
    routes = []
    for route, callback in _walk(get_resolver().url_patterns):
        route = route.lstrip("^").rstrip("$")
        if not route.startswith("v1/") or route in PUBLIC:
            continue
        for method in _methods(callback):
            routes.append((method, route))
    return sorted(set(routes))


ROUTES = v1_routes()
OBJECT_ROUTES = [r for r in ROUTES if PARAM.search(r[1])]


@pytest.fixture
def owned(workspace, workspace_and_key):
    """One object of each kind in the owner's workspace, all reachable under the name `own`."""
    now = timezone.now()
    queue = make_queue(workspace, "own")
    job = JobFactory(queue=queue, state="failed", now=now, attempts=1)
    execution = Execution.objects.create(
        workspace=workspace,
        job=job,
        queue=queue,
        attempt=1,
        status="dead_letter",
        started_at=now - timedelta(seconds=1),
        completed_at=now,
    )
    worker = Worker.objects.create(workspace=workspace, name="w1", queues=["own"])
    ScheduleFactory(queue=queue, name="own", next_run_at=now + timedelta(minutes=1))
    from alerts.models import Alert, WebhookSubscription

    alert = Alert.objects.create(workspace=workspace, name="own", channel="email", target="ops@example.com")
    webhook = WebhookSubscription.objects.create(
        workspace=workspace, url="https://93.184.215.14/hook", events=["*"], secret="whsec_eA=="
    )
    return {
        "name": "own",
        "job_id": job.id,
        "id": None,
        "execution_id": execution.id,
        "worker_id": worker.id,
        "key_id": workspace_and_key[1].key.id,
        "jobid": job.id,
        "exeid": execution.id,
        "wkrid": worker.id,
        "keyid": workspace_and_key[1].key.id,
        "alrid": alert.id,
        "whid": webhook.id,
    }


def _concrete(route: str, owned: dict) -> str:
    def sub(match: re.Match) -> str:
        converter, name = match.group(1), match.group(2)
        for candidate in (converter, name):
            if candidate and owned.get(candidate):
                return owned[candidate]
        if converter == "name" or name == "name":
            return owned["name"]
        raise AssertionError(f"no test object for <{match.group(0)}> in {route}")

    return "/" + PARAM.sub(sub, route)


def _call(client, method: str, path: str):
    return getattr(client, method.lower())(
        path, {} if method in {"POST", "PUT", "PATCH"} else None, format="json"
    )


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "route"), OBJECT_ROUTES, ids=[f"{m} {r}" for m, r in OBJECT_ROUTES])
def test_other_workspace_gets_404(method, route, owned, other_workspace_client, api_client):
    path = _concrete(route, owned)
    response = _call(other_workspace_client, method, path)
    assert response.status_code == 404, (path, response.status_code, response.content[:300])
    assert response.json()["error"]["code"] == "NOT_FOUND"
    # The owner reaches the same object: the 404 above is isolation, not a broken route.
    mine = _call(api_client, method, path)
    assert mine.status_code != 404, (path, mine.content[:300])


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "route"), ROUTES, ids=[f"{m} {r}" for m, r in ROUTES])
def test_no_key_gets_401(method, route, owned, anon_client):
    path = _concrete(route, owned)
    response = _call(anon_client, method, path)
    assert response.status_code == 401, (path, response.status_code, response.content[:300])
    assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_matrix_covers_the_contract():
    # A guard against the matrix silently shrinking (e.g. a resolver walk that finds nothing).
    assert len(ROUTES) >= 10


# HEAD (on every GET route) and OPTIONS (on every route) go through the same checks: no key is a 401, and
# HEAD of another workspace's object is a 404 like GET. OPTIONS answers only the route's methods
# (config/metadata.py), so it has nothing of another workspace's to hide.
GET_ROUTES = sorted({route for method, route in ROUTES if method == "GET"})
EXTRA_METHOD_ROUTES = [("HEAD", r) for r in GET_ROUTES] + [
    ("OPTIONS", r) for r in sorted({r for _, r in ROUTES})
]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "route"), EXTRA_METHOD_ROUTES, ids=[f"{m} {r}" for m, r in EXTRA_METHOD_ROUTES]
)
def test_head_and_options_without_key_get_401(method, route, owned, anon_client):
    path = _concrete(route, owned)
    response = getattr(anon_client, method.lower())(path)
    assert response.status_code == 401, (method, path, response.status_code, response.content[:300])


@pytest.mark.django_db
@pytest.mark.parametrize("route", [r for r in GET_ROUTES if PARAM.search(r)])
def test_head_of_another_workspaces_object_is_404(route, owned, other_workspace_client, api_client):
    path = _concrete(route, owned)
    assert other_workspace_client.head(path).status_code == 404, path
    assert api_client.head(path).status_code == 200, path
    assert api_client.options(path).status_code == 200, path
