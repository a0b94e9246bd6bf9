"""Plan moves from billing to accounts (so accounts reads caps without importing billing).

State only: the table keeps its name (billing_plan) and its rows, and the workspace's foreign key keeps its
constraint; billing 0005 drops billing's Plan from the state and renames the content type. Reversible.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_workspace_billing_synced_at"),
        ("billing", "0004_plan_max_webhooks"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Plan",
                    fields=[
                        ("code", models.SlugField(max_length=32, primary_key=True, serialize=False)),
                        ("name", models.CharField(max_length=64)),
                        ("requests_per_minute", models.PositiveIntegerField(blank=True, null=True)),
                        ("jobs_per_month", models.PositiveIntegerField(blank=True, null=True)),
                        ("retention_days", models.PositiveIntegerField(blank=True, null=True)),
                        ("max_queues", models.PositiveIntegerField(blank=True, null=True)),
                        ("max_schedules", models.PositiveIntegerField(blank=True, null=True)),
                        ("max_alerts", models.PositiveIntegerField(blank=True, null=True)),
                        ("max_webhooks", models.PositiveIntegerField(blank=True, null=True)),
                        ("max_attempts", models.PositiveIntegerField(blank=True, null=True)),
                        ("max_timeout_ms", models.PositiveIntegerField(blank=True, null=True)),
                        ("stripe_price_id", models.CharField(blank=True, default="", max_length=128)),
                        ("sort_order", models.PositiveSmallIntegerField(default=0)),
                    ],
                    options={"db_table": "billing_plan", "ordering": ["sort_order"]},
                ),
                migrations.AlterField(
                    model_name="workspace",
                    name="plan",
                    field=models.ForeignKey(
                        default="free",
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="workspaces",
                        to="accounts.plan",
                    ),
                ),
            ],
        ),
    ]
