"""`python manage.py grpcserve`: Spooled's gRPC services (spooled.grpc.server), the Procfile's `grpc` process."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve Spooled's gRPC API (package spooled.v1) on HOST:GRPC_PORT (default 127.0.0.1:50051)."
    # The system checks import every URLconf and view (about 12 MB) into a process that serves none of them;
    # `manage.py check` and the web process run them. The Celery worker skips them the same way.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST") or "127.0.0.1")
        parser.add_argument("--port", type=int, default=int(os.environ.get("GRPC_PORT") or 50051))
        parser.add_argument(
            "--threads",
            type=int,
            default=int(os.environ.get("SPINDLE_GRPC_DB_THREADS") or 4),
            help="database threads (each holds one connection)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from spooled.grpc.server import serve

        host = options["host"]
        address = f"[{host}]:{options['port']}" if ":" in host else f"{host}:{options['port']}"
        asyncio.run(serve(address, threads=max(1, options["threads"])))
