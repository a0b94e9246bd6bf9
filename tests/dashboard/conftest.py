"""Browser fixtures: the real Django ASGI app under uvicorn in a thread, driven by Debian's Chromium.

The server serves config.asgi (the stream process's application), so the dashboard's `/events` really streams
and every page is a real HTTP round trip; test data is written through the services and committed
(transactional tests), so the server's own connections see it. One browser per package, a fresh context
(cookies, session) per test.
"""

from __future__ import annotations

import gc
import os
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connections

from tests.processes import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="package")
def dashboard_url(django_db_setup, django_db_blocker) -> Iterator[str]:
    import uvicorn

    from config.asgi import application

    settings_dict = connections["default"].settings_dict
    old_max_age = settings_dict.get("CONN_MAX_AGE", 0)
    # The server's request threads close their connections after each request, so none outlives the tests
    # (the test database is dropped at the end of the session).
    settings_dict["CONN_MAX_AGE"] = 0
    port = free_port()
    config = uvicorn.Config(
        application,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="dashboard-uvicorn", daemon=True)
    with django_db_blocker.unblock():
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
            time.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(10)
            gc.collect()
            settings_dict["CONN_MAX_AGE"] = old_max_age


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running on this thread; Django would then refuse the tests'
    # own (synchronous) ORM calls. Allowed for this package only, restored after it.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser, dashboard_url):
    context = browser.new_context(base_url=dashboard_url)
    context.set_default_timeout(5000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # confirm() on drain and purge
    yield page
    context.close()


@pytest.fixture
def account(plans):
    from accounts.services import user_register

    registration = user_register(email="ada@example.com", password=PASSWORD, name="Ada")
    return registration


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 at its production cost is ~1 s a hash on a loaded CI machine, paid at registration and at each
    # login; these tests are about the pages, not the hasher. The server thread reads the same settings.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
