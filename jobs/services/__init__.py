"""Writes for jobs. Split by concern: `enqueue` (creating jobs), `engine` (claim, lease, outcome, retry,
sweeper), `delivery` (push HTTP), `pull` (worker-facing), `operations` (edit, cancel, bulk ops), `events`
(the outbox)."""
