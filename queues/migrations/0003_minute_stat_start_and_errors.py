"""The minute rollup also holds what /metrics read from today's executions (issue 18): the enqueue-to-start
histogram of first attempts (start_hist, start_sum_ms, start_count) and errors by type and HTTP status.

Constant database defaults, so adding the columns rewrites no row (PostgreSQL 11+) and the raw enqueue and
schedule upserts, which name only the columns they add to, keep working. Reversible: the columns are dropped.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('queues', '0002_event_queueminutestat'),
    ]

    operations = [
        migrations.AddField(
            model_name='queueminutestat',
            name='errors',
            field=models.JSONField(blank=True, db_default=models.Value({}, models.JSONField()), default=dict),
        ),
        migrations.AddField(
            model_name='queueminutestat',
            name='start_count',
            field=models.PositiveIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name='queueminutestat',
            name='start_hist',
            field=models.JSONField(blank=True, db_default=models.Value({}, models.JSONField()), default=dict),
        ),
        migrations.AddField(
            model_name='queueminutestat',
            name='start_sum_ms',
            field=models.PositiveBigIntegerField(db_default=0, default=0),
        ),
    ]
