"""Event and QueueMinuteStat now belong to the queues app (queues 0002): drop them from this app's state only.

The tables keep their names (`jobs_event`, `jobs_queueminutestat`), so no row moves and nothing is locked.
Reversing gives the models back to this app's state, again without touching the database.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0008_flow_parents_index"),
        ("queues", "0002_event_queueminutestat"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Event"),
                migrations.DeleteModel(name="QueueMinuteStat"),
            ],
            database_operations=[],
        ),
    ]
