"""Accounts' domain errors."""

from __future__ import annotations

from config.exceptions import ApplicationError


class Unauthorized(ApplicationError):
    """Wrong credentials or a bad token on the public auth routes.

    Raised as an ApplicationError, not DRF's AuthenticationFailed: DRF turns the latter into a 403 on views
    without authentication classes, and API.md wants 401 there.
    """

    code = "UNAUTHORIZED"
    status_code = 401
    default_message = "Missing, malformed, revoked or unknown API key or token."
