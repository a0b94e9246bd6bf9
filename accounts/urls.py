from django.urls import path

from . import views

urlpatterns = [
    path("auth/register-anonymous", views.register_anonymous, name="register-anonymous"),
]
