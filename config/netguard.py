"""SSRF guard for every outbound target: queue endpoints, per-job `http` targets, schedules, alert and webhook URLs.

Checked twice: when a target is saved (`validate_target_url`, a 400 for the client) and again when the delivery
engine connects (`check_resolved` / `address_allowed`), because DNS can change between the two (rebinding).

Save-time lookups run under a `Resolver`: one lookup per distinct host per request, all of them within one time
budget (`SPINDLE_DNS_BUDGET_S`, default 2 s), on a small shared thread pool, because `getaddrinfo` cannot be
interrupted: a batch of 1,000 jobs naming slow hosts must not hold a web thread for minutes (issue 9). A host
that does not answer within the budget is a 400; the connect-time check still runs at delivery.

Settings are read at call time, never at import, so `override_settings(SPINDLE_ALLOW_PRIVATE_TARGETS=...)` works.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
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


def allow_private() -> bool:
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
    if allow_private():
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


DEFAULT_DNS_BUDGET_S = 2.0
# Lookups that outlive their request's budget keep a pool thread until getaddrinfo returns; the pool's size caps
# how many such threads exist at once (later lookups wait in its queue, still bounded by their own budget).
_DNS_POOL = ThreadPoolExecutor(max_workers=8, thread_name_prefix="netguard-dns")


class DnsBudgetExceeded(TargetRefused):
    """The request's DNS time budget ran out before this host resolved."""


class Resolver:
    """Save-time DNS for one request: each distinct host looked up once, every lookup within one time budget."""

    def __init__(self, budget_s: float | None = None) -> None:
        if budget_s is None:
            budget_s = float(getattr(settings, "SPINDLE_DNS_BUDGET_S", DEFAULT_DNS_BUDGET_S))
        self.budget_s = budget_s
        self.deadline = time.monotonic() + budget_s
        self.lookups = 0
        self._results: dict[str, list[str] | BaseException] = {}

    def resolve(self, host: str, port: int | None = None) -> list[str]:
        """Addresses of `host` (raises OSError/UnicodeError if unresolvable, DnsBudgetExceeded if out of time)."""
        if _normalise(host) is not None:
            return [host]  # an IP literal: nothing to look up
        key = host.lower()
        if key not in self._results:
            self._results[key] = self._lookup(host, port)
        result = self._results[key]
        if isinstance(result, BaseException):
            raise result
        return result

    def _lookup(self, host: str, port: int | None) -> list[str] | BaseException:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            return DnsBudgetExceeded(f"{host} was not resolved within {self.budget_s:g} s")
        self.lookups += 1
        future = _DNS_POOL.submit(resolve, host, port)
        try:
            return future.result(timeout=remaining)
        except FutureTimeout:
            future.cancel()  # still queued: never run it; already running: it finishes on its own
            return DnsBudgetExceeded(f"{host} was not resolved within {self.budget_s:g} s")
        except (OSError, UnicodeError) as exc:
            return exc


def check_resolved(host: str, port: int | None = None, *, resolver: Resolver | None = None) -> list[str]:
    """Connect-time check: resolve `host` and return its addresses if all are allowed, else raise TargetRefused.

    Every address must pass, not just the first: a client library may try them in any order. With a `resolver`
    (save time), lookups are shared and time-bounded per request.
    """
    try:
        if resolver is not None:
            addresses = resolver.resolve(host.strip("[]"), port)
        else:
            addresses = resolve(host.strip("[]"), port)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"{host} does not resolve") from exc
    if not addresses:
        raise TargetRefused(f"{host} does not resolve")
    refused = [ip for ip in addresses if not address_allowed(ip)]
    if refused:
        raise TargetRefused(f"{host} resolves to a refused address ({refused[0]})")
    return addresses


def validate_target_url(url: str, *, field: str = "url", resolver: Resolver | None = None) -> str:
    """Check an outbound http(s) target when it is saved; return it unchanged or raise ValidationFailed.

    Pass one `resolver` for every URL of a request (a batch) so hosts are looked up once under one budget."""

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
        check_resolved(host, port, resolver=resolver or Resolver())
    except DnsBudgetExceeded:
        raise fail("The host did not resolve in time (DNS is slow or unreachable); retry later.") from None
    except TargetRefused as exc:
        if "does not resolve" in str(exc):
            raise fail("The host does not resolve.") from None
        raise fail(
            "The target must be a public address (loopback, private, link-local and metadata addresses are refused)."
        ) from None
    return url
