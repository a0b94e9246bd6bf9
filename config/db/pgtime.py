"""psycopg's C `timestamptz` loader on Django's PostgreSQL connections.

Django registers its own text loader on every connection (`psycopg_any.BaseTzLoader`): a subclass of psycopg's
pure-Python loader that parses each value in Python and then replaces its tzinfo with the connection's time
zone. On this machine that is ~4.8 us a value against ~0.5 us for the C loader of `psycopg[binary]` (measured
over 80,000 values), and a claimed job row carries about seven timestamps. When the session time zone is UTC
(Django sets it so under USE_TZ with TIME_ZONE "UTC") the C loader gives the same values: aware datetimes with
`tzinfo=datetime.timezone.utc`. The engine (config.db.pgengine) calls `use_c_timestamptz_loader` on every new
connection, in every process; it has a `connection_created` receiver's signature.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

_LOADER: type | None = None


def _loader() -> type | None:
    """Django's loader class with the C parser inside; None without psycopg 3's C implementation."""
    global _LOADER
    if _LOADER is None:
        from django.db.backends.postgresql.psycopg_any import BaseTzLoader
        from psycopg import adapters, pq

        c_loader = adapters.get_loader(adapters.types["timestamptz"].oid, pq.Format.TEXT)
        if c_loader is None or c_loader.__module__.startswith("psycopg.types"):
            return None

        class CTzLoader(BaseTzLoader):
            # Django re-registers its loader on a cursor whose loader's `timezone` differs from the connection's.
            timezone = UTC

            def __init__(self, oid: int, context: Any = None) -> None:
                super().__init__(oid, context)
                self.load = c_loader(oid, context).load  # type: ignore[method-assign]

        _LOADER = CTzLoader
    return _LOADER


def use_c_timestamptz_loader(sender: Any, connection: Any, **kwargs: Any) -> None:
    """On a new Django connection to PostgreSQL in UTC: load timestamptz values with psycopg's C loader."""
    if connection.vendor != "postgresql" or connection.timezone != UTC:
        return
    raw = connection.connection
    if raw is None or raw.info.parameter_status("TimeZone") not in ("UTC", "Etc/UTC"):
        return
    loader = _loader()
    if loader is not None:
        raw.adapters.register_loader("timestamptz", loader)
