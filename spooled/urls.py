"""Spooled's wire surface under /api/v1: realtime routes first (they are static paths), then REST."""

from spooled.realtime.urls import urlpatterns as realtime_urls
from spooled.rest.urls import urlpatterns as rest_urls

urlpatterns = [*realtime_urls, *rest_urls]
