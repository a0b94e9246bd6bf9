from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounts.services import workspace_create
from config.exceptions import ValidationFailed


class Command(BaseCommand):
    help = "Create a workspace and print a new API key (shown once)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name")
        parser.add_argument("--plan", default="free")

    def handle(self, *args, name: str, plan: str, **options) -> None:
        try:
            workspace, issued = workspace_create(name=name, plan_code=plan)
        except ValidationFailed as exc:
            raise CommandError("; ".join(m for msgs in exc.details.values() for m in msgs)) from None
        self.stdout.write(f"workspace: {workspace.id} ({workspace.name}, plan {workspace.plan_id})")
        self.stdout.write(f"api key:   {issued.raw}")
