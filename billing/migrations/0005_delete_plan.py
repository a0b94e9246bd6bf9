"""Plan now lives in accounts (accounts 0004): drop it from billing's state only; the table stays.

The content type row is renamed with the model, so staff permissions and admin history on plans follow it.
It is done here, where the move completes: reversing only this migration gives the row back to billing.
A row already under the new label (post_migrate creates one when only part of the move is applied) is left
alone rather than merged.
"""

from django.db import migrations


def _move_content_type(apps, from_label, to_label):
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label=to_label, model="plan").exists():
        ContentType.objects.filter(app_label=from_label, model="plan").update(app_label=to_label)


def content_type_to_accounts(apps, schema_editor):
    _move_content_type(apps, "billing", "accounts")


def content_type_to_billing(apps, schema_editor):
    _move_content_type(apps, "accounts", "billing")


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0004_plan_max_webhooks"),
        ("accounts", "0004_plan"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(state_operations=[migrations.DeleteModel(name="Plan")]),
        migrations.RunPython(content_type_to_accounts, content_type_to_billing),
    ]
