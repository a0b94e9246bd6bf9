from __future__ import annotations

from django.core.management.base import BaseCommand

from accounts.models import Workspace
from accounts.services import workspace_create

DEMO_NAME = "demo"


class Command(BaseCommand):
    help = (
        "On first run create the demo workspace and print its API key; later runs say how to get a new one."
    )

    def handle(self, *args, **options) -> None:
        existing = Workspace.objects.filter(name=DEMO_NAME, is_anonymous=False).order_by("created_at").first()
        if existing is not None:
            self.stdout.write(
                f"Demo workspace {existing.id} exists; keys are stored hashed and cannot be shown again.\n"
                f"Issue a new key with: .venv/bin/python manage.py issue_key {existing.id}"
            )
            return
        workspace, issued = workspace_create(name=DEMO_NAME, plan_code="free")
        self.stdout.write(
            f"Created demo workspace {workspace.id}.\n"
            f"API key (shown once): {issued.raw}\n"
            f"Try: curl -H 'Authorization: Bearer {issued.raw}' http://HOST:PORT/v1/queues"
        )
