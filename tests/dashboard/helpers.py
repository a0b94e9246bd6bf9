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
