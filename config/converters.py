"""URL converters for prefixed ids, so `jobs/<jobid:id>` never swallows `jobs/claim` or `jobs/batch`."""

from __future__ import annotations

from django.urls import register_converter


class _PrefixedId:
    prefix = ""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.regex = cls.prefix + r"_[0-9a-z]{1,40}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class JobId(_PrefixedId):
    prefix = "job"


class ExecutionId(_PrefixedId):
    prefix = "exe"


class WorkerId(_PrefixedId):
    prefix = "wkr"


class AlertId(_PrefixedId):
    prefix = "alr"


class WebhookId(_PrefixedId):
    prefix = "wh"


class KeyId(_PrefixedId):
    prefix = "key"


class Name:
    """Queue and schedule names (validated against API.md's pattern by the services)."""

    regex = r"[^/]{1,200}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


def register_all() -> None:
    """Register the converters once (re-registering is deprecated in Django 5.x)."""
    from django.urls.converters import get_converters

    known = get_converters()
    for name, cls in {
        "jobid": JobId,
        "exeid": ExecutionId,
        "wkrid": WorkerId,
        "alrid": AlertId,
        "whid": WebhookId,
        "keyid": KeyId,
        "name": Name,
    }.items():
        if name not in known:
            register_converter(cls, name)
