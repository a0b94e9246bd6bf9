"""`spindle_require(ok, message)`: raises SQLSTATE SPQ01 when `ok` is false. PostgreSQL only.

An enqueue that owns its transaction sends COMMIT in the same round trip as its writes, so the row locks of the
quota counter and the per-minute rollup (which serialise a workspace's enqueues) are released without waiting
for the client. A short quota must then abort the transaction on the server, before that COMMIT runs.
"""

from django.db import migrations

from config.migration_ops import PostgresOnlySQL

CREATE = """
CREATE OR REPLACE FUNCTION spindle_require(ok boolean, message text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF ok IS NOT TRUE THEN
        RAISE EXCEPTION USING ERRCODE = 'SPQ01', MESSAGE = message;
    END IF;
    RETURN true;
END
$$
"""


class Migration(migrations.Migration):
    dependencies = [("jobs", "0009_move_event_stat_to_queues")]

    operations = [PostgresOnlySQL(CREATE, "DROP FUNCTION IF EXISTS spindle_require(boolean, text)")]
