"""URL converters for prefixed ids, so `jobs/<jobid:id>` never swallows `jobs/claim` or `jobs/batch`."""

from __future__ import annotations

from django.urls import register_converter


class _Text:
    """A path segment passed through as it is; `regex` says which segments match."""

    regex = ""

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class Name(_Text):
    """Queue and schedule names (validated against API.md's pattern by the services)."""

    regex = r"[^/]{1,200}"


# Converter name -> the id prefix it matches (config.ids.new_id makes ids as `<prefix>_<letters and digits>`).
_ID_PREFIXES = {"jobid": "job", "exeid": "exe", "wkrid": "wkr", "alrid": "alr", "whid": "wh", "keyid": "key"}


def _prefixed_id(prefix: str) -> type[_Text]:
    return type(f"{prefix.capitalize()}Id", (_Text,), {"regex": prefix + r"_[0-9a-z]{1,40}"})


def register_all() -> None:
    """Register the converters once (re-registering is deprecated in Django 5.x)."""
    from django.urls.converters import get_converters

    known = get_converters()
    converters = {name: _prefixed_id(prefix) for name, prefix in _ID_PREFIXES.items()}
    for name, cls in {**converters, "name": Name}.items():
        if name not in known:
            register_converter(cls, name)
