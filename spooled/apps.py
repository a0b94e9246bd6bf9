from django.apps import AppConfig


class SpooledConfig(AppConfig):
    name = "spooled"
    verbose_name = "Spooled-compatible surface"
