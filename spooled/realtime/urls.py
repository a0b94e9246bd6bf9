"""The SSE routes under /api/v1 (spooled.urls mounts them; config.front serves them on the async side)."""

urlpatterns: list = []
