"""SSRF guard for every outbound target: queue endpoints, per-job `http` targets, schedules, alert and webhook URLs.

Checked twice: when a target is saved (`validate_target_url`, a 400 for the client) and again when the delivery
engine connects (`check_resolved` / `address_allowed`), because DNS can change between the two (rebinding).

Settings are read at call time, never at import, so `override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=...)` works.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings

from config.exceptions import ValidationFailed

MAX_URL_LENGTH = 2048

# Refused whatever SPINDLE_ALLOW_PRIVATE_TARGETS says: cloud metadata services live here, and a token stolen
# from one is worth more than anything a private-network deployment could want to reach on them.
_ALWAYS_BLOCKED = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)

# Private-use ranges refused unless the deployment opts in (self-hosting inside a network, dev, tests).
# `is_private` alone misses CGNAT (100.64.0.0/10 is "shared", not private), so it is listed explicitly.
_PRIVATE = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("172.16.0.0/12"),
    ipaddress.ip_network("192.168.0.0/16"),
    ipaddress.ip_network("100.64.0.0/10"),
    ipaddress.ip_network("fc00::/7"),
)


class TargetRefused(Exception):
    """A host resolves to an address the guard refuses (raised by `check_resolved`)."""


def _allow_private() -> bool:
    return bool(getattr(settings, "SPINDLE_ALLOW_PRIVATE_TARGETS", False))


def _normalise(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])  # drop an IPv6 zone id ("fe80::1%eth0")
    except ValueError:
        return None
    # ::ffff:127.0.0.1 and 64:ff9b::/96-style tricks must not dodge the IPv4 rules.
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return addr.ipv4_mapped
        if addr.sixtofour is not None:
            return addr.sixtofour
    return addr


def address_allowed(ip: str) -> bool:
    """Whether an outbound connection to this one address is allowed (reads the setting now)."""
    addr = _normalise(ip)
    if addr is None:
        return False
    if any(addr in net for net in _ALWAYS_BLOCKED if net.version == addr.version) or addr.is_link_local:
        return False
    if _allow_private():
        return True
    if any(addr in net for net in _PRIVATE if net.version == addr.version):
        return False
    return not (
        addr.is_loopback
        or addr.is_private
        or addr.is_unspecified
        or addr.is_multicast
        or addr.is_reserved
        or not addr.is_global
    )


def resolve(host: str, port: int | None = None) -> list[str]:
    """Every address `host` resolves to (an IP literal resolves to itself). Raises OSError if unresolvable."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    seen: list[str] = []
    for info in infos:
        ip = str(info[4][0])
        if ip not in seen:
            seen.append(ip)
    return seen


def check_resolved(host: str, port: int | None = None) -> list[str]:
    """Connect-time check: resolve `host` and return its addresses if all are allowed, else raise TargetRefused.

    Every address must pass, not just the first: a client library may try them in any order.
    """
    try:
        addresses = resolve(host.strip("[]"), port)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"{host} does not resolve") from exc
    if not addresses:
        raise TargetRefused(f"{host} does not resolve")
    refused = [ip for ip in addresses if not address_allowed(ip)]
    if refused:
        raise TargetRefused(f"{host} resolves to a refused address ({refused[0]})")
    return addresses


def validate_target_url(url: str, *, field: str = "url") -> str:
    """Check an outbound http(s) target when it is saved; return it unchanged or raise ValidationFailed."""

    def fail(message: str) -> ValidationFailed:
        return ValidationFailed(details={field: [message]})

    if not isinstance(url, str) or not url:
        raise fail("A URL is required.")
    if len(url) > MAX_URL_LENGTH:
        raise fail(f"The URL must be at most {MAX_URL_LENGTH} characters.")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise fail("The URL must not contain whitespace or control characters.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise fail("Enter a valid URL.") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise fail("Only http and https URLs are allowed.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise fail("The URL must not contain credentials.")
    host = parts.hostname
    if not host:
        raise fail("The URL must have a host.")
    try:
        check_resolved(host, port)
    except TargetRefused as exc:
        if "does not resolve" in str(exc):
            raise fail("The host does not resolve.") from None
        raise fail(
            "The target must be a public address (loopback, private, link-local and metadata addresses are refused)."
        ) from None
    return url
