"""HEAD answers like GET on every GET route of the URLconf (it was a 405 on /v1/health, /v1/status, /v1/usage,
/v1/auth/me and /)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern
from rest_framework.test import APIClient

from config.front import is_stream_path
from dashboard.auth import SESSION_API_KEY, SESSION_USER, SESSION_WORKSPACE

_PARAM = re.compile(r"<(?:(?P<conv>[^>:]+):)?(?P<name>[^>]+)>")


def _sample(converter: object) -> str:
    prefix = getattr(converter, "prefix", None)
    if prefix:
        return f"{prefix}_0abc"
    name = type(converter).__name__
    return {"IntConverter": "1", "UUIDConverter": str(uuid.uuid4())}.get(name, "x")


def _paths(patterns: list, prefix: str = "") -> Iterator[str]:
    """A concrete path per route: route parameters get a sample value; regex routes only when they have none."""
    for entry in patterns:
        pattern = entry.pattern
        if isinstance(pattern, RoutePattern):
            converters = pattern.converters
            part = _PARAM.sub(lambda m, conv=converters: _sample(conv[m["name"]]), str(pattern))
        elif isinstance(pattern, RegexPattern) and re.compile(pattern._regex).groups == 0:
            part = pattern._regex.lstrip("^").rstrip("$").replace("\\", "")
        else:
            continue
        if isinstance(entry, URLResolver):
            yield from _paths(entry.url_patterns, prefix + part)
        elif isinstance(entry, URLPattern):
            yield "/" + prefix + part


@pytest.mark.django_db
def test_head_is_never_405_where_get_is_not(workspace_and_key):
    workspace, key = workspace_and_key
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.raw}")
    session = client.session
    session.update({SESSION_WORKSPACE: workspace.id, SESSION_API_KEY: key.key.id, SESSION_USER: None})
    session.save()
    checked, wrong = [], []
    for path in sorted(set(_paths(get_resolver().url_patterns))):
        if is_stream_path(path):
            continue
        cache.clear()  # the plan's requests/minute would answer 429 long before the walk ends
        get = client.get(path)
        if get.status_code == 405:
            continue
        head = client.head(path)
        checked.append(path)
        if head.status_code != get.status_code or head.content:
            wrong.append((path, get.status_code, head.status_code))
    assert not wrong
    for path in ("/v1/health", "/v1/status", "/v1/usage", "/v1/auth/me", "/"):
        assert path in checked
    assert len(checked) > 40


@pytest.mark.django_db
def test_head_on_an_event_stream_answers_headers_without_streaming(api_client):
    response = api_client.head("/v1/events")
    assert response.status_code == 200
    assert not response.streaming and response.content == b""
