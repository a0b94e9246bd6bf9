"""In-flight limits of a worker process's deliveries (jobs/services/conveyor.py): the ticket a claim books, and how
many jobs a claim may take beside what is already in flight.

The limits are work-conserving: a workspace alone may use the whole pool but a small reserve; when several are
busy each claims only up to its fair share of it, and a queue up to its share of its workspace's. The reserve is
open only to a workspace with nothing in flight, so a newcomer always gets in at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Ticket:
    """Capacity booked for one claim: `size` jobs of `queue_id` (of `workspace_id`)."""

    queue_id: str
    workspace_id: str
    size: int
    # Whether the claim was capped by the queue's limits (or cannot tell): then finishing must kick the queue.
    capped: bool = True


def allowance(
    *,
    batch: int,
    total: int,
    reserve: int,
    in_flight: int,
    held_ws: int,
    active_ws: int,
    held_q: int,
    active_q: int,
) -> int:
    """How many jobs a claim may take now.

    `active_ws` counts the workspaces with jobs in flight here, `active_q` the queues of this workspace with
    jobs in flight; the asking workspace and queue count as active.
    """
    n_ws = active_ws + (0 if held_ws else 1)
    share = math.ceil((total - reserve) / n_ws)
    q_share = math.ceil(share / (active_q + (0 if held_q else 1)))
    size = min(batch, share - held_ws, q_share - held_q, total - reserve - in_flight)
    if held_ws == 0:
        # A newcomer enters through the reserve, even when borrowers filled the rest of the pool.
        size = max(size, min(batch, max(1, reserve // 2), total - in_flight))
    return max(0, size)
