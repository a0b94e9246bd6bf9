"""Event (the outbox) and QueueMinuteStat (the per-minute rollup) move here from the jobs app.

State only: the tables `jobs_event` and `jobs_queueminutestat`, their indexes and constraints stay as the jobs
app created them. jobs 0009 drops the models from the jobs app's state after this one adds them here.
"""

import django.db.models.deletion
from django.db import migrations, models

import queues.models


def _workspace() -> tuple[str, models.ForeignKey]:
    fk = models.ForeignKey(
        db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="accounts.workspace"
    )
    return "workspace", fk


_EVENT = migrations.CreateModel(
    name="Event",
    fields=[
        (
            "id",
            models.CharField(
                default=queues.models._event_id,
                editable=False,
                max_length=40,
                primary_key=True,
                serialize=False,
            ),
        ),
        ("type", models.CharField(max_length=32)),
        ("queue_name", models.CharField(blank=True, max_length=64, null=True)),
        ("job_id", models.CharField(blank=True, max_length=40, null=True)),
        ("data", models.JSONField(blank=True, default=dict)),
        ("created_at", models.DateTimeField()),
        _workspace(),
    ],
    options={
        "db_table": "jobs_event",
        "indexes": [
            models.Index(fields=["workspace", "id"], name="jobs_event_ws"),
            models.Index(fields=["workspace", "queue_name", "id"], name="jobs_event_ws_queue"),
            models.Index(fields=["created_at"], name="jobs_event_created"),
        ],
    },
)

_STAT = migrations.CreateModel(
    name="QueueMinuteStat",
    fields=[
        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
        ("minute", models.DateTimeField()),
        ("enqueued", models.PositiveIntegerField(default=0)),
        ("completed", models.PositiveIntegerField(default=0)),
        ("failed", models.PositiveIntegerField(default=0)),
        ("timeout", models.PositiveIntegerField(default=0)),
        ("duration_sum_ms", models.PositiveBigIntegerField(default=0)),
        ("duration_count", models.PositiveIntegerField(default=0)),
        ("duration_hist", models.JSONField(blank=True, default=dict)),
        (
            "queue",
            models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="queues.queue"
            ),
        ),
        _workspace(),
    ],
    options={
        "db_table": "jobs_queueminutestat",
        "indexes": [models.Index(fields=["workspace", "minute"], name="jobs_stat_ws_minute")],
        "constraints": [
            models.UniqueConstraint(fields=("queue", "minute"), name="jobs_stat_queue_minute_uniq")
        ],
    },
)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("queues", "0001_initial"),
        # The tables exist from jobs 0001 on; the latest jobs migration before the move keeps the order plain.
        ("jobs", "0008_flow_parents_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[_EVENT, _STAT], database_operations=[]),
    ]
