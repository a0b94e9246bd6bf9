"""Spooled's wire surface under /api/v1: realtime routes first (they are static paths), then REST, then a
catch-all that answers an unknown path 404 in Spooled's error shape."""

from spooled.realtime.urls import urlpatterns as realtime_urls
from spooled.rest.urls import fallback
from spooled.rest.urls import urlpatterns as rest_urls

urlpatterns = [*realtime_urls, *rest_urls, *fallback]
