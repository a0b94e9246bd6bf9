"""WSGI entry point: the Django application, served by config/front.py through a2wsgi (`make run`), or by any
WSGI server reached directly. Forwarded headers count only from SPINDLE_TRUSTED_PROXIES (config/forwarded.py)."""

import os

from django.core.wsgi import get_wsgi_application

from config.forwarded import trusted_proxies

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = trusted_proxies(get_wsgi_application())
