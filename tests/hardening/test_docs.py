"""Issue 9 item 8: the OpenAPI document answers the usual Accept headers, and /docs loads every asset it names."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import pytest
from django.test import Client


@pytest.mark.parametrize("path", ["/openapi.json", "/doc"])
@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "application/vnd.oai.openapi+json",
        "application/json, text/plain, */*",
        "*/*",
        "text/html,application/xhtml+xml,application/xml;q=0.9",
        None,
    ],
)
def test_openapi_document_answers_common_accept_headers(path, accept):
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = Client().get(path, **headers)
    assert response.status_code == 200, (accept, response.status_code)
    assert response["Content-Type"].split(";")[0] in ("application/json", "application/vnd.oai.openapi+json")
    assert response.json()["openapi"].startswith("3.")


def test_every_asset_docs_references_answers_200():
    client = Client()
    response = client.get("/docs")
    assert response.status_code == 200
    html = response.content.decode()
    urls = set(re.findall(r'(?:src|href)\s*=\s*"([^"]+)"', html))
    urls |= set(re.findall(r'\burl:\s*"([^"]+)"', html))  # the schema URL Swagger UI fetches
    assert len(urls) >= 4, urls  # stylesheet, two scripts, favicon, schema
    for url in sorted(urls):
        assert not url.startswith(("http://", "https://", "//")), f"{url}: /docs must not use a CDN"
        asset = client.get(urljoin("/docs", url))
        body = b"".join(asset.streaming_content) if asset.streaming else asset.content
        assert asset.status_code == 200, (url, asset.status_code)
        assert body, url
