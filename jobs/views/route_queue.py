"""The queue a route names (`/v1/queues/{name}/…`), read with the request's API key in one round trip."""

from __future__ import annotations

from rest_framework.request import Request

from accounts.authentication import Companion
from accounts.models import Workspace
from jobs.services.enqueue import queue_by_name
from queues.models import Queue

# A view's `auth_companion`: the key lookup also reads the key's workspace's queue named by the URL's `name`.
QUEUE_OF_ROUTE = Companion(Queue, url_kwarg="name", column="name")


def route_queue(request: Request, workspace: Workspace, name: str) -> Queue | None:
    """The workspace's queue `name`, or None: what the API key's lookup read (the row, or None when there is
    none), else a query of its own (a JWT, or a view without the companion)."""
    user = request.user
    if getattr(user, "companion_of", None) == name and getattr(user, "workspace", None) == workspace:
        return user.companion
    return queue_by_name(workspace_id=workspace.id, name=name)
