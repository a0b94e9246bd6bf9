from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.models import Workspace
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Issue an additional API key for a workspace and print it (shown once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("workspace_id")
        parser.add_argument("--name", default="cli")

    def handle(self, *args, workspace_id: str, name: str, **options) -> None:
        workspace = Workspace.objects.filter(id=workspace_id).first()
        if workspace is None:
            raise CommandError(f"No workspace {workspace_id}.")
        issued = api_key_create(workspace=workspace, name=name)
        self.stdout.write(f"api key: {issued.raw}")
