"""ASGI entry point: Django's async application.

`make run` serves it through config.front (`uvicorn config.front:app`), which hands it the long-lived
event-stream routes (their async views hold no thread while they wait) and serves everything else with the WSGI
application. It loads the same URLconf, so any route answers here too.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_asgi_application()
