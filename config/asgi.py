"""ASGI entry point for the event-stream process: `uvicorn config.asgi:application`.

REST runs under gunicorn (WSGI); this process serves the long-lived SSE routes (`/v1/events`,
`/v1/queues/{name}/events`), whose async views hold no thread while they wait. It loads the same URLconf, so
any route answers here too.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()
