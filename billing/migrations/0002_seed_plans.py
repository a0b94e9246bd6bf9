from django.db import migrations

PLANS = [
    # code, name, rpm, jobs/month, retention days, queues, schedules, alerts, max attempts, max timeout ms
    ("free", "Free", 60, 10_000, 7, 5, 5, 1, 4, 30_000),
    ("pro", "Pro", 300, 100_000, 30, 50, 100, 10, 10, 120_000),
    ("team", "Team", 1_000, 1_000_000, 90, 500, 1_000, 50, 20, 300_000),
    # Enterprise caps are custom: null means unlimited until staff set the deal's numbers.
    ("enterprise", "Enterprise", None, None, None, None, None, None, None, None),
]


def seed(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for order, (code, name, rpm, jobs, retention, queues, schedules, alerts, attempts, timeout) in enumerate(
        PLANS
    ):
        Plan.objects.update_or_create(
            code=code,
            defaults=dict(
                name=name,
                requests_per_minute=rpm,
                jobs_per_month=jobs,
                retention_days=retention,
                max_queues=queues,
                max_schedules=schedules,
                max_alerts=alerts,
                max_attempts=attempts,
                max_timeout_ms=timeout,
                sort_order=order,
            ),
        )


def unseed(apps, schema_editor):
    apps.get_model("billing", "Plan").objects.filter(
        code__in=[p[0] for p in PLANS], workspaces__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
