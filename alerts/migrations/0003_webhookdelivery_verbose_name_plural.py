# The admin's plural of WebhookDelivery ("webhook deliveries", not "deliverys"): model state only, no SQL.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0002_created_at_indexes"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="webhookdelivery",
            options={"verbose_name_plural": "webhook deliveries"},
        ),
    ]
