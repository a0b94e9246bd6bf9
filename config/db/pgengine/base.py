"""Django's PostgreSQL backend (settings ENGINE `config.db.pgengine`), with two changes: the health check of a
persistent connection, and generic plans for the statements Spindle prepares.

With CONN_HEALTH_CHECKS, Django checks a kept connection once per request by sending `SELECT 1` before its
first query: a round trip on every API request (PERF.md budgets count it). Here the check is local first: a
connection psycopg knows to be closed or broken is unusable; an idle one whose socket has nothing to read is
usable (a server that restarted or ended the session has closed the socket or sent a FATAL message, which
makes it readable). Only when something is waiting on the socket, or a transaction is open, is `SELECT 1`
sent as before.

Spindle prepares a few hot statements per connection (the claim, config.db.postgres.prepared). PostgreSQL's
default plan_cache_mode (auto) kept building a custom plan for every EXECUTE of the claim (EXPLAIN: planning
0.7 ms, execution 0.4 ms), its generic plan never looking cheaper although it is the same plan on the same
indexes; so connections start with `plan_cache_mode=force_generic_plan`. Nothing else is prepared on them
(Django binds parameters client-side), so no other plan changes.

Timestamps load through psycopg's C loader on every connection in UTC (config.db.pgtime): Django's own loader
parses each value in Python, about 4 us against under 1 us, and a claimed job carries seven of them.
"""

from __future__ import annotations

import select

from django.db.backends.postgresql import base
from psycopg import pq

from config.db.pgtime import use_c_timestamptz_loader


class DatabaseWrapper(base.DatabaseWrapper):
    def get_connection_params(self) -> dict:
        params = super().get_connection_params()
        params["options"] = f"{params.get('options', '')} -c plan_cache_mode=force_generic_plan".strip()
        return params

    def init_connection_state(self) -> None:
        super().init_connection_state()  # the session time zone is set from here on
        use_c_timestamptz_loader(sender=type(self), connection=self)

    def is_usable(self) -> bool:
        conn = self.connection
        if conn is None or conn.closed or conn.broken:
            return False
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            return super().is_usable()
        try:
            readable, _, _ = select.select([conn.fileno()], [], [], 0)
        except (OSError, ValueError):
            return False
        return super().is_usable() if readable else True
