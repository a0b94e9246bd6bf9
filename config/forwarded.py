"""The client's address and scheme, taken from `X-Forwarded-For`/`-Proto` only when a configured proxy sent them.

SPINDLE_TRUSTED_PROXIES lists the addresses (or CIDR ranges) of the proxies in front of Spindle; by default
none. A request from one of them gets its client from the right-most `X-Forwarded-For` entry that is not itself
a trusted proxy, and its scheme from `X-Forwarded-Proto`. From anyone else both headers are dropped, so a
client cannot forge the address that rate limits and the `/metrics` allowlist see, nor make Django believe a
plain-HTTP request was HTTPS (secure cookies, CSRF's referer check). Django then reads the scheme from the
request itself (`wsgi.url_scheme`, the ASGI scope), which is why SECURE_PROXY_SSL_HEADER stays unset.

The same rule for both entry points: `resolve_scope` for the one port (config/front.py), `trusted_proxies` for
the WSGI application reached directly (config/wsgi.py). Both drop the headers, so applying both is harmless.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_FORWARDED = (b"x-forwarded-for", b"x-forwarded-proto")


@functools.cache
def _networks() -> tuple[Network, ...]:
    return tuple(
        ipaddress.ip_network(entry.strip(), strict=False) for entry in settings.SPINDLE_TRUSTED_PROXIES
    )


def is_trusted(address: str) -> bool:
    networks = _networks()
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in networks)


def forwarded(peer: str, forwarded_for: str, forwarded_proto: str, scheme: str) -> tuple[str, str]:
    """(client address, scheme) of a request that came from `peer` with these header values."""
    if not is_trusted(peer):
        return peer, scheme
    client = peer
    # Right to left: each trusted proxy vouches for the hop before it; the first untrusted hop is the client.
    for hop in reversed([hop.strip() for hop in forwarded_for.split(",") if hop.strip()]):
        client = hop
        if not is_trusted(hop):
            break
    proto = forwarded_proto.rsplit(",", 1)[-1].strip().lower()
    return client, proto if proto in ("http", "https") else scheme


def resolve_scope(scope: dict[str, Any]) -> dict[str, Any]:
    """An ASGI HTTP scope with the trusted client and scheme, and no forwarded headers left."""
    values: dict[bytes, list[str]] = {name: [] for name in _FORWARDED}
    headers = []
    for name, value in scope["headers"]:
        if name in values:
            values[name].append(value.decode("latin-1"))
        else:
            headers.append((name, value))
    if len(headers) == len(scope["headers"]):
        return scope
    peer, port = scope.get("client") or ("", 0)
    client, scheme = forwarded(
        peer, ", ".join(values[_FORWARDED[0]]), ", ".join(values[_FORWARDED[1]]), scope["scheme"]
    )
    return {**scope, "headers": headers, "client": (client, port), "scheme": scheme}


def trusted_proxies(app: WsgiApp) -> WsgiApp:
    """The same rule for the WSGI application reached directly (e.g. gunicorn behind nginx)."""

    def wrapped(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        forwarded_for = environ.pop("HTTP_X_FORWARDED_FOR", "")
        forwarded_proto = environ.pop("HTTP_X_FORWARDED_PROTO", "")
        if forwarded_for or forwarded_proto:
            client, scheme = forwarded(
                environ.get("REMOTE_ADDR", ""),
                forwarded_for,
                forwarded_proto,
                environ.get("wsgi.url_scheme", "http"),
            )
            environ["REMOTE_ADDR"], environ["wsgi.url_scheme"] = client, scheme
        return app(environ, start_response)

    return wrapped
