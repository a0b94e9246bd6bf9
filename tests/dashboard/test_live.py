"""Live updates in a real browser: one shared feed per browser whatever the number of tabs, targeted refreshes,
and swaps that keep what the user was doing (focus)."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from jobs.services.enqueue import job_enqueue
from jobs.services.job_controls import job_cancel
from jobs.specs import JobSpec
from tests.factories import make_queue

from .helpers import login_with_password, stream_slots_taken, wait_live

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TABS = 8


@pytest.mark.parametrize("sharing", ["shared-worker", "leader-tab"])
def test_many_tabs_share_one_feed_and_one_stream_slot(page, account, sharing):
    """Chromium allows 6 HTTP/1.1 connections per host: with a stream per tab, 6 tabs froze every tab and a 7th
    never loaded. One SharedWorker's EventSource serves them all, and takes one workspace stream slot; without
    SharedWorker (Chrome on Android) one leader tab holds it and relays over a BroadcastChannel."""
    if sharing == "leader-tab":
        page.context.add_init_script("delete window.SharedWorker")
    workspace = account.workspace
    queue = make_queue(workspace, "emails")
    login_with_password(page)
    tabs = [page]
    for _ in range(TABS - 1):
        tab = page.context.new_page()
        tab.goto("/")  # the 7th and 8th tabs load like the others
        expect(tab.locator("h1")).to_have_text("Queues")
        tabs.append(tab)
    for tab in tabs:
        wait_live(tab)
    if sharing == "leader-tab":
        assert page.evaluate("() => typeof SharedWorker") == "undefined"
    assert stream_slots_taken(workspace.id) == 1

    # Navigation still works in every tab (no connection is left for it if each tab streams).
    for tab in tabs:
        tab.goto("/jobs")
        expect(tab.locator("h1")).to_have_text("Jobs")
        tab.goto("/")
        wait_live(tab)
    assert stream_slots_taken(workspace.id) == 1

    # And a change reaches every tab through the one feed.
    job_enqueue(workspace=workspace, queue=queue, spec=JobSpec(name="live"))
    for tab in tabs:
        expect(tab.locator("tr[data-queue=emails] td[data-state=waiting]")).to_have_text("1")


def test_only_affected_fragments_refresh_and_focus_is_kept(page, account):
    workspace = account.workspace
    emails, other = make_queue(workspace, "emails"), make_queue(workspace, "other")
    watched, _ = job_enqueue(workspace=workspace, queue=emails, spec=JobSpec(name="watched"))
    login_with_password(page)
    page.goto(f"/queues/emails/jobs/{watched.id}")
    wait_live(page)
    page.locator("button[data-action=cancel]").focus()

    # Unrelated activity first, then one change to the watched job: the feed delivers them in order.
    for i in range(3):
        job_enqueue(workspace=workspace, queue=other, spec=JobSpec(name=f"noise{i}"))
    page.wait_for_function("() => window.spindleLive.changes >= 1")
    job_cancel(workspace=workspace, queue=emails, job_id=watched.id)
    expect(page.locator("#job-state")).to_have_text("cancelled")
    # Only the watched job's own event made the page re-fetch.
    assert page.evaluate("() => window.spindleLive.fetched") == 1


def test_a_live_swap_keeps_focus_and_ticked_boxes(page, account):
    workspace = account.workspace
    queue = make_queue(workspace, "emails")
    first, _ = job_enqueue(workspace=workspace, queue=queue, spec=JobSpec(name="first"))
    login_with_password(page)
    page.goto("/queues/emails")
    wait_live(page)
    page.locator(f"tr[data-job={first.id}] input[type=checkbox]").check()
    page.locator("#state-tabs a[data-state=waiting]").focus()
    job_enqueue(workspace=workspace, queue=queue, spec=JobSpec(name="second"))
    expect(page.locator("#queue-live tbody tr")).to_have_count(2)
    expect(page.locator("#state-tabs a[data-state=waiting]")).to_be_focused()
    expect(page.locator(f"tr[data-job={first.id}] input[type=checkbox]")).to_be_checked()


def test_the_feed_closes_when_no_tab_needs_it(page, account):
    """The worker holds the stream only while some tab with live fragments is open (and visible)."""
    login_with_password(page)
    wait_live(page)
    assert stream_slots_taken(account.workspace.id) == 1
    page.goto("/usage")  # no live fragment here: the only tab said goodbye to the worker
    deadline = time.monotonic() + 10
    while stream_slots_taken(account.workspace.id):
        assert time.monotonic() < deadline, "the shared feed stayed open with no tab to feed"
        time.sleep(0.1)
    page.goto("/")
    wait_live(page)
    assert stream_slots_taken(account.workspace.id) == 1
