"""Payload search (`?q=` over the JSON text): a trigram GIN index on `payload::text`. PostgreSQL only.

Built CONCURRENTLY so an existing jobs table stays writable meanwhile, hence a non-atomic migration.
"""

from django.db import migrations

from config.migration_ops import PostgresOnlySQL


class Migration(migrations.Migration):
    atomic = False

    dependencies = [("jobs", "0004_lean_indexes")]

    operations = [
        PostgresOnlySQL(
            "CREATE EXTENSION IF NOT EXISTS pg_trgm",
            migrations.RunSQL.noop,
        ),
        PostgresOnlySQL(
            "CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_job_payload_trgm ON jobs_job "
            "USING gin ((payload::text) gin_trgm_ops)",
            "DROP INDEX CONCURRENTLY IF EXISTS jobs_job_payload_trgm",
        ),
    ]
