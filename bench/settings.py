"""Bench-only settings: the product's settings plus a URLconf that adds `GET /bench/ping` (bench/urls_ping.py).

Used only by `make bench` (gunicorn with DJANGO_SETTINGS_MODULE=bench.settings) for the DRF ping baseline of the
single-enqueue metric; the product never routes a ping.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls_ping"
