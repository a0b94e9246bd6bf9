"""config/forwarded.py: X-Forwarded-For/-Proto count only from SPINDLE_TRUSTED_PROXIES, for both entry points."""

from __future__ import annotations

import pytest

from config import forwarded


@pytest.fixture
def trust(settings):
    def set_proxies(*proxies: str) -> None:
        settings.SPINDLE_TRUSTED_PROXIES = list(proxies)
        forwarded._networks.cache_clear()

    yield set_proxies
    forwarded._networks.cache_clear()


def _scope(peer: str, *headers: tuple[bytes, bytes]) -> dict:
    return {"type": "http", "scheme": "http", "client": (peer, 5000), "headers": [(b"host", b"t"), *headers]}


def test_untrusted_peer_keeps_its_address_and_loses_the_headers(trust):
    trust()
    scope = forwarded.resolve_scope(
        _scope("203.0.113.9", (b"x-forwarded-for", b"10.0.0.1"), (b"x-forwarded-proto", b"https"))
    )
    assert scope["client"] == ("203.0.113.9", 5000) and scope["scheme"] == "http"
    assert scope["headers"] == [(b"host", b"t")]


def test_trusted_proxy_chain_gives_the_first_untrusted_hop(trust):
    trust("10.0.0.0/8", "192.0.2.1")
    scope = forwarded.resolve_scope(
        _scope(
            "192.0.2.1",
            (b"x-forwarded-for", b"6.6.6.6, 198.51.100.7, 10.1.1.1"),
            (b"x-forwarded-proto", b"https"),
        )
    )
    assert scope["client"] == ("198.51.100.7", 5000) and scope["scheme"] == "https"
    assert scope["headers"] == [(b"host", b"t")]


def test_wsgi_entry_point_applies_the_same_rule(trust):
    trust("127.0.0.1")
    seen: list[tuple[str, str]] = []

    def app(environ, start_response):  # noqa: ANN001, ANN202
        seen.append((environ["REMOTE_ADDR"], environ["wsgi.url_scheme"]))
        assert "HTTP_X_FORWARDED_FOR" not in environ
        return []

    wrapped = forwarded.trusted_proxies(app)
    headers = {
        "HTTP_X_FORWARDED_FOR": "198.51.100.7",
        "HTTP_X_FORWARDED_PROTO": "https",
        "wsgi.url_scheme": "http",
    }
    wrapped({"REMOTE_ADDR": "203.0.113.9", **headers}, None)
    wrapped({"REMOTE_ADDR": "127.0.0.1", **headers}, None)
    assert seen == [("203.0.113.9", "http"), ("198.51.100.7", "https")]
