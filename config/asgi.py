"""ASGI entry point: Django's async application.

`make run` serves it through config.front (`uvicorn config.front:app`), which hands it the long-lived
event-stream routes (their async views hold no thread while they wait) and serves everything else with the WSGI
application. It loads the same URLconf, so any route answers here too.
"""

import os
from typing import Any

from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_finished
from django.db import connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()


def close_request_thread_connections(sender: Any, **kwargs: Any) -> None:
    """Close the database connections of a request this application served, whatever CONN_MAX_AGE says.

    Django runs an ASGI request's sync work (authentication, a stream's polls) on a thread of its own that ends with
    the request (asgiref's ThreadSensitiveContext), so a connection kept for reuse there is never reused: it stayed
    open until garbage collection found it, one PostgreSQL session per stream served. request_finished runs on that
    thread. The WSGI threads, long-lived, keep theirs.
    """
    if isinstance(sender, type) and issubclass(sender, ASGIHandler):
        connections.close_all()


request_finished.connect(close_request_thread_connections, dispatch_uid="spindle-asgi-request-connections")
