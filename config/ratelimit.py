"""Rate limits on django-ratelimit's core, counted in the shared cache (Redis) so every web process agrees.

- Per workspace: the plan's requests per minute, for every authenticated /v1 request (a DRF throttle), with
  `X-RateLimit-*` headers added by a middleware from what the throttle recorded on the request.
- Per client address: registration and login (`SPINDLE_REGISTER_RATE`, `SPINDLE_LOGIN_RATE`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import EXPIRATION_FUDGE, _get_window, _make_cache_key, get_usage
from rest_framework.throttling import BaseThrottle

from .exceptions import RateLimited

logger = logging.getLogger(__name__)

WORKSPACE_GROUP = "spindle:workspace"
REGISTER_GROUP = "spindle:register"
LOGIN_GROUP = "spindle:login"
WINDOW_S = 60
REQUEST_ATTR = "spindle_rate_limit"


@dataclass(frozen=True)
class RateLimitState:
    limit: int
    remaining: int
    reset: int  # unix seconds when the current window ends
    limited: bool

    @property
    def retry_after_s(self) -> int:
        return max(1, self.reset - int(time.time()))


def _usage(request: Any, *, group: str, key: Any, rate: Any) -> RateLimitState | None:
    """Count this request; None when the limit does not apply or the cache is down (fail open, logged)."""
    try:
        usage = get_usage(request, group=group, key=key, rate=rate, increment=True)
    except Exception:
        logger.exception("rate-limit cache unavailable; letting the request through")
        return None
    if usage is None:
        return None
    if usage["time_left"] < 0:
        # django-ratelimit's "cache failed" answer: refusing everything while Redis is down would turn a
        # cache outage into an API outage, so fail open.
        logger.error("rate-limit cache did not count the request; letting it through")
        return None
    limit = int(usage["limit"])
    count = int(usage["count"])
    return RateLimitState(
        limit=limit,
        remaining=max(0, limit - count),
        reset=int(time.time()) + int(usage["time_left"]),
        limited=bool(usage["should_limit"]),
    )


# SET NX EX (the window's first request starts the count at 0 with django-ratelimit's expiry), then INCR.
_COUNT_LUA = "redis.call('SET', KEYS[1], 0, 'EX', ARGV[1], 'NX') return redis.call('INCR', KEYS[1])"
_count_sha: str | None = None


def _eval_count(client: Any, key: str, ttl_s: int) -> int:
    """Run the script by SHA, loading it once per process (and again if Redis restarted and forgot it)."""
    global _count_sha
    # Imported here, like Django's own Redis backend does: processes on the database cache (make run's embedded
    # mode) never load the redis package (~5 MB per process).
    from redis.exceptions import NoScriptError

    if _count_sha is not None:
        try:
            return int(client.evalsha(_count_sha, 1, key, ttl_s))
        except NoScriptError:
            pass
    _count_sha = client.script_load(_COUNT_LUA)
    return int(client.evalsha(_count_sha, 1, key, ttl_s))


# RedisCacheClient.get_client builds a new redis.Redis per call (copying ~170 response callbacks, about a tenth
# of an enqueue's CPU). A redis.Redis is thread-safe over its pool, so one per pool serves every request.
_CLIENTS: dict[int, tuple[Any, Any]] = {}


def _pooled_client(cache: RedisCache) -> Any:
    pool = cache._cache._get_connection_pool(True)
    entry = _CLIENTS.get(id(pool))
    if entry is None or entry[0] is not pool:
        entry = _CLIENTS[id(pool)] = (pool, cache._cache._client(connection_pool=pool))
    return entry[1]


def _redis_count(*, group: str, value: str, limit: int, period: int) -> RateLimitState | None:
    """django-ratelimit's fixed-window count in ONE Redis round trip, or None when the cache is not Redis.

    get_usage costs three (SET NX, then the Django client's EXISTS + INCRBY) on every API request. Same window,
    same cache key and same stored integer, so processes on either path count into the same budget.
    """
    cache = caches[getattr(settings, "RATELIMIT_USE_CACHE", "default")]
    if not isinstance(cache, RedisCache):
        return None
    window = _get_window(value, period)
    key = cache.make_and_validate_key(_make_cache_key(group, window, (limit, period), value, None))
    client = _pooled_client(cache)
    # A script, not a pipeline: building a redis-py pipeline copies ~170 response callbacks per request.
    count = _eval_count(client, key, period + EXPIRATION_FUDGE)
    return RateLimitState(limit=limit, remaining=max(0, limit - count), reset=window, limited=count > limit)


def workspace_rate_consume(request: Any, *, workspace: Any) -> RateLimitState | None:
    """Count one request against the workspace's plan rate; None for unlimited plans (enterprise)."""
    rpm = workspace.plan.requests_per_minute
    if rpm is None:
        return None
    try:
        state = _redis_count(group=WORKSPACE_GROUP, value=str(workspace.id), limit=int(rpm), period=WINDOW_S)
    except Exception:
        logger.exception("rate-limit cache unavailable; letting the request through")
        return None
    if state is not None:
        return state
    return _usage(request, group=WORKSPACE_GROUP, key=lambda group, req: workspace.id, rate=(rpm, WINDOW_S))


class WorkspaceRateThrottle(BaseThrottle):
    """DEFAULT_THROTTLE_CLASSES entry: the plan's requests/minute per workspace, shared across processes."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        workspace = getattr(request.user, "workspace", None)
        if workspace is None:
            return True  # public routes: their own per-address limits apply
        state = workspace_rate_consume(request, workspace=workspace)
        if state is None:
            return True
        # Recorded on the Django request so the middleware (which never sees DRF's Request) can add headers.
        setattr(request._request, REQUEST_ATTR, state)
        if state.limited:
            self._wait = state.retry_after_s
            return False
        return True

    def wait(self) -> float | None:
        return self._wait


def request_rate_limit(request: Any) -> RateLimitState | None:
    """What the throttle recorded for this request (DRF or Django request)."""
    raw = getattr(request, "_request", request)
    return getattr(raw, REQUEST_ATTR, None)


class RateLimitHeadersMiddleware:
    """Adds `X-RateLimit-Limit/-Remaining/-Reset` to every response whose request was counted."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        state: RateLimitState | None = getattr(request, REQUEST_ATTR, None)
        if state is not None:
            response["X-RateLimit-Limit"] = str(state.limit)
            response["X-RateLimit-Remaining"] = str(state.remaining)
            response["X-RateLimit-Reset"] = str(state.reset)
            if state.limited and not response.has_header("Retry-After"):
                response["Retry-After"] = str(state.retry_after_s)
        return response


def _client_limit(request: Any, *, group: str, rate: str) -> None:
    state = _usage(request, group=group, key="ip", rate=rate)
    if state is not None and state.limited:
        raise RateLimited(
            "Too many attempts from this address; try again later.",
            details={"retry_after_s": state.retry_after_s},
        )


def register_rate_check(request: Any) -> None:
    """Count a registration attempt (`register` and `register-anonymous` share the budget)."""
    _client_limit(request, group=REGISTER_GROUP, rate=settings.SPINDLE_REGISTER_RATE)


def login_rate_check(request: Any) -> None:
    """Count a login attempt, successful or not."""
    _client_limit(request, group=LOGIN_GROUP, rate=settings.SPINDLE_LOGIN_RATE)
