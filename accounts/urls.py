from django.urls import path

from . import views

keys = views.ApiKeyViewSet.as_view({"get": "list", "post": "create"})
key_detail = views.ApiKeyViewSet.as_view({"delete": "destroy"})

urlpatterns = [
    path("auth/register", views.register, name="register"),
    path("auth/register-anonymous", views.register_anonymous, name="register-anonymous"),
    path("auth/login", views.login, name="login"),
    path("auth/refresh", views.refresh, name="token-refresh"),
    path("auth/me", views.me, name="me"),
    path("auth/rotate-key", views.rotate_key, name="rotate-key"),
    path("keys", keys, name="keys"),
    path("keys/<keyid:key_id>", key_detail, name="key-detail"),
]
