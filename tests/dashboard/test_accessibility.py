"""axe-core (axe-playwright-python, its copy of axe-core injected into the page: nothing from a CDN) over every
dashboard page, light and dark: no serious or critical violation."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from jobs.services.enqueue import job_enqueue
from jobs.specs import JobSpec
from schedules.services import schedule_create
from tests.factories import make_queue

from .helpers import login_with_password

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_no_serious_or_critical_axe_violation_on_any_page(page, account, scheme):
    workspace = account.workspace
    queue = make_queue(workspace, "emails")
    job, _ = job_enqueue(
        workspace=workspace, queue=queue, spec=JobSpec(name="x", tags=["t"], payload={"a": 1})
    )
    schedule_create(workspace=workspace, data={"name": "nightly", "queue": "emails", "cron": "0 3 * * *"})
    page.emulate_media(color_scheme=scheme)
    axe = Axe()
    found = {}
    page.goto("/login")
    results = axe.run(page)
    found.update(_serious(results, "/login"))
    login_with_password(page)
    paths = [
        "/",
        "/jobs",
        "/search?q=x",
        "/schedules",
        "/schedules/nightly",
        "/schedules/new",
        "/workers",
        "/alerts",
        "/webhooks",
        "/usage",
        "/settings",
        "/queues/emails",
        "/queues/emails/dlq",
        f"/queues/emails/jobs/{job.id}",
        "/no-such-page",
    ]
    for path in paths:
        page.goto(path)
        found.update(_serious(axe.run(page), path))
    assert not found, found


def _serious(results, path: str) -> dict:
    bad = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    return {path: [(v["id"], [n["target"] for n in v["nodes"][:3]]) for v in bad]} if bad else {}
