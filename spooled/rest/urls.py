"""The REST routes under /api/v1 (spooled.urls mounts them)."""

urlpatterns: list = []
