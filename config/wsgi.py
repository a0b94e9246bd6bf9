import os

from django.core.wsgi import get_wsgi_application

from config.forwarded import trusted_front

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
# Behind config.front (a unix socket) the client address comes from the front; see config/forwarded.py.
application = trusted_front(get_wsgi_application())
