"""Read captured SQL as the database runs it: hot statements go as `EXECUTE name(...)` of statements prepared on
the connection (config.db.postgres.prepared), so a test that looks at what a round trip did reads them back."""

from __future__ import annotations

import re

from django.db import connection

_EXECUTE = re.compile(r"EXECUTE (spindle_\w+)\(")


def _bodies() -> dict[str, str]:
    """name -> text of each statement prepared on this connection. PostgreSQL keeps the whole query string that
    created one (with the other statements of its round trip): its own PREPARE is picked out of it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, statement FROM pg_prepared_statements")
        found = cursor.fetchall()
    bodies = {}
    for name, text in found:
        head = f"PREPARE {name} AS "
        bodies[name] = next((p[len(head) :] for p in text.split(";\n") if p.startswith(head)), "?")
    return bodies


def expand_prepared(statements: list[str]) -> list[str]:
    """Each captured SQL text without its PREPAREs (and the DEALLOCATEs of plans prepared again), every `EXECUTE name(` preceded by the statement it runs."""
    bodies = _bodies()
    expanded = []
    for sql in statements:
        kept = ";\n".join(
            p for p in sql.split(";\n") if not p.startswith(("PREPARE spindle_", "DEALLOCATE spindle_"))
        )
        expanded.append(_EXECUTE.sub(lambda m: f"/* {bodies.get(m.group(1), '?')} */ {m.group(0)}", kept))
    return expanded
