"""Raw rows to model instances, for the set-based paths that read whole rows without compiling a queryset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection

from config import db, fastjson
from jobs.models import Job
from queues.models import Queue

QUEUE_FIELDS = list(Queue._meta.concrete_fields)
JOB_FIELDS = list(Job._meta.concrete_fields)
QUEUE_COLS = ", ".join(f'"{f.column}"' for f in QUEUE_FIELDS)
JOB_COLS = ", ".join(f'"{f.column}"' for f in JOB_FIELDS)
_JOB_BY_ID_SQL = f"SELECT {JOB_COLS} FROM jobs_job WHERE id = %s"


def job_cols_safe() -> str:
    """The job's columns with run_at (the only datetime a client writes) clamped to what the driver loads."""
    clamp = db.backend().clamp_datetime
    return ", ".join(
        f'{clamp(chr(34) + f.column + chr(34))} AS "{f.column}"' if f.column == "run_at" else f'"{f.column}"'
        for f in JOB_FIELDS
    )


def _row_loader(model: Any, fields: list[Any]) -> Callable[[tuple], Any]:
    """Model instances from raw rows in concrete-field order (JSON columns arrive as text: decoded here)."""
    attnames = [f.attname for f in fields]
    json_idx = [i for i, f in enumerate(fields) if f.get_internal_type() == "JSONField"]
    loads = fastjson.loads

    def load(row: tuple) -> Any:
        values = list(row)
        for i in json_idx:
            if values[i] is not None:
                values[i] = loads(values[i])
        return model.from_db("default", attnames, values)

    return load


load_queue = _row_loader(Queue, QUEUE_FIELDS)
load_job = _row_loader(Job, JOB_FIELDS)


def job_get_fast(job_id: str) -> Job | None:
    """A job by primary key without compiling a queryset (the pull routes render the row they just wrote)."""
    if not db.backend().SET_BASED:
        # SQLite hands datetimes back as text, which only the ORM converts.
        return Job.objects.filter(pk=job_id).first()
    with connection.cursor() as cursor:
        cursor.execute(_JOB_BY_ID_SQL, [job_id])
        row = cursor.fetchone()
    return load_job(row) if row is not None else None
