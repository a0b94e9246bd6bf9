"""Organizations: Spindle's workspace is Spooled's organization. A key acts on one workspace, so the list has
one entry and any other id is a 404; creating, renaming or deleting organizations goes through /v1 accounts.
`usage` reports the workspace's plan limits and what counts against them (spooled.selectors)."""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response

from config.exceptions import NotFound
from queues.events import iso, shape_of
from spooled import selectors
from spooled.rest.base import SpooledView


def organization_shape(workspace: Any) -> dict[str, Any]:
    return shape_of(
        workspace,
        "id name slug=id plan_tier=plan_id billing_email stripe_customer_id stripe_subscription_id"
        " stripe_subscription_status created_at updated_at",
        billing_email=workspace.owner.email if workspace.owner_id else None,
        stripe_customer_id=workspace.stripe_customer_id or None,
        stripe_subscription_id=workspace.stripe_subscription_id or None,
        stripe_subscription_status=workspace.subscription_status or None,
    )


class OrganizationsView(SpooledView):
    def get(self, request: Request) -> Response:
        shape = organization_shape(self.workspace)
        return Response([{k: shape[k] for k in ("id", "name", "slug", "plan_tier", "created_at")}])


class OrganizationUsageView(SpooledView):
    def get(self, request: Request) -> Response:
        return Response(selectors.organization_usage(workspace=self.workspace))


class _OneOrganization(SpooledView):
    def organization(self, org_id: str) -> Any:
        if org_id != self.workspace.id:
            raise NotFound(f"Organization '{org_id}' not found.")
        return self.workspace


class OrganizationView(_OneOrganization):
    def get(self, request: Request, org_id: str) -> Response:
        return Response(organization_shape(self.organization(org_id)))


class OrganizationMembersView(_OneOrganization):
    def get(self, request: Request, org_id: str) -> Response:
        workspace = self.organization(org_id)
        owner = workspace.owner if workspace.owner_id else None
        if owner is None:
            return Response([])
        member = {
            "id": f"{workspace.id}:{owner.pk}",
            "user_id": str(owner.pk),
            "email": owner.email,
            "name": owner.get_full_name() or owner.get_username(),
            "role": "owner",
            "joined_at": iso(workspace.created_at),
        }
        return Response([member])
