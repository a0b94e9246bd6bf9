"""Steps the browser tests share."""

from __future__ import annotations

from .conftest import PASSWORD


def login_with_password(page, email: str = "ada@example.com", password: str = PASSWORD) -> None:
    page.goto("/login")
    form = page.locator("#login-password")
    form.locator("input[name=email]").fill(email)
    form.locator("input[name=password]").fill(password)
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/")


def login_with_key(page, raw_key: str) -> None:
    page.goto("/login")
    form = page.locator("#login-key")
    form.locator("input[name=api_key]").fill(raw_key)
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/")


def stream_slots_taken(workspace_id: str) -> int:
    """How many of the workspace's stream slots are held right now (jobs.services.streams.StreamSlot keys)."""
    from django.core.cache import cache

    from jobs.services.streams import StreamSlot, stream_cap

    probe = StreamSlot(workspace_id, ttl_s=1)
    return sum(cache.get(probe._key(i)) is not None for i in range(stream_cap()))


def wait_live(page) -> None:
    """Until the page is fed by the browser's shared live feed."""
    from playwright.sync_api import expect

    expect(page.locator("html")).to_have_attribute("data-live-status", "open")
