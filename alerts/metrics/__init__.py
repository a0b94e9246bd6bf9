"""`GET /metrics`: Prometheus metrics for operators (internal), through prometheus_client collectors.

- `view`: the access rules (METRICS_TOKEN, METRICS_ALLOWED_IPS), the snapshot shared by every process, the view;
- `collector`: the families, built from the database on each collect;
- `reads`: the queries, each over live or today's rows through an index (never the history retention keeps).

It lives in alerts, the highest app it reads (jobs, queues and alerts' own outbound rows), so that config stays
below every app; config/urls.py routes it.
"""

from __future__ import annotations

from .collector import render_metrics
from .view import MetricsView, metrics, metrics_snapshot

__all__ = ["MetricsView", "metrics", "metrics_snapshot", "render_metrics"]
