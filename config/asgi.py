"""ASGI entry point: Django's async application.

`make run` serves it through config.front (`uvicorn config.front:app`), which hands it the long-lived
event-stream routes (their async views hold no thread while they wait) and proxies everything else to
gunicorn. Without the front it can run alone (`uvicorn config.asgi:application`) behind a proxy that routes
the stream paths (config.front.STREAM_PATHS) to it; it loads the same URLconf, so any route answers here too.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()
