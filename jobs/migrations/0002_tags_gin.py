from django.db import migrations

from config.migration_ops import PostgresOnlySQL


class Migration(migrations.Migration):
    dependencies = [("jobs", "0001_initial")]
    operations = [
        # GET …/jobs?tag=x filters with `tags @> '["x"]'` (jsonb containment), served by this GIN index.
        PostgresOnlySQL(
            "CREATE INDEX IF NOT EXISTS jobs_job_tags_gin ON jobs_job USING gin (tags jsonb_path_ops)",
            "DROP INDEX IF EXISTS jobs_job_tags_gin",
        ),
    ]
