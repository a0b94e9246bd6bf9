from django.db import migrations, models

from config.migration_ops import PostgresOnlySQL

# Django's `varchar_pattern_ops` twins of the id and queue_id indexes serve LIKE queries these ids never see, and
# each is one more index entry written by every firing (advancing next_run_at is never a HOT update).
_LIKE = [
    ("schedules_schedule_id_69653178_like", "schedules_schedule", "id"),
    ("schedules_schedule_queue_id_fc841205_like", "schedules_schedule", "queue_id"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0004_plan"),
        ("queues", "0002_event_queueminutestat"),
        ("schedules", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="schedule",
            index=models.Index(
                condition=models.Q(("cron__isnull", False), ("paused", False)),
                fields=["next_run_at"],
                name="schedules_schedule_cron_due",
            ),
        ),
        PostgresOnlySQL(
            [f"DROP INDEX IF EXISTS {name}" for name, _t, _c in _LIKE],
            [
                f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({col} varchar_pattern_ops)"
                for name, table, col in _LIKE
            ],
        ),
    ]
