"""Checking a schedule body (create, PATCH, PUT): field errors first (400), then 413, then 402."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from accounts.models import Workspace
from config.exceptions import ApplicationError, PayloadTooLarge, PlanLimit, ValidationFailed
from queues.models import DEFAULT_RETRY_POLICY, Queue

from .. import timing
from ..models import Overlap, Schedule
from ..serializers import JOB_TEMPLATE_FIELDS, READ_ONLY_FIELDS, WRITABLE_FIELDS

NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,63}$")
MAX_DESCRIPTION_CHARS = 1000
MIN_INTERVAL_MS = 1000
MAX_INTERVAL_MS = 366 * 86_400_000


@dataclass
class Cleaned:
    values: dict[str, Any]
    queue: Queue | None  # None: create the `default` queue on demand
    timing_changed: bool


def _int(value: Any) -> bool:
    return type(value) is int  # JSON `true` is not a number


def validate(*, workspace: Workspace, data: dict[str, Any], current: Schedule | None) -> Cleaned:
    """Check a create (current=None) or PATCH body; 400 for field errors first, then 413, then 402."""
    errors: dict[str, list[str]] = {}
    for key in data.keys() - WRITABLE_FIELDS:
        errors[key] = ["This field is read-only."] if key in READ_ONLY_FIELDS else ["Unknown field."]
    values = _plain_fields(data, current, errors)
    values.update(_timing(data, current, errors))
    timing_changed = current is None or (values["cron"], values["interval_ms"], values["timezone"]) != (
        current.cron,
        current.interval_ms,
        current.timezone,
    )
    template = _merged_template(data, current, errors)
    queue = _queue(workspace, data, current, errors, has_http=template.get("http") is not None)
    later: ApplicationError | None = None
    if "queue" not in errors and not any(k.startswith("job") for k in errors):
        later = _check_template(workspace, queue, template, errors)
    if errors:
        raise ValidationFailed(details=errors)
    if later is not None:
        raise later
    values["job"] = template
    return Cleaned(values=values, queue=queue, timing_changed=timing_changed)


def _plain_fields(
    data: dict[str, Any], current: Schedule | None, errors: dict[str, list[str]]
) -> dict[str, Any]:
    """name, description, overlap and paused."""
    values: dict[str, Any] = {}
    if "name" in data or current is None:
        name = data.get("name")
        if type(name) is not str or not NAME_RE.match(name):
            errors["name"] = [
                "Expected 1-64 characters: letters, digits and _.:- (starting with a letter or digit)."
            ]
        else:
            values["name"] = name

    if "description" in data:
        description = data["description"]
        if description is None:
            values["description"] = ""
        elif type(description) is not str or len(description) > MAX_DESCRIPTION_CHARS:
            errors["description"] = [f"Expected a string of at most {MAX_DESCRIPTION_CHARS} characters."]
        else:
            values["description"] = description

    if "overlap" in data:
        if data["overlap"] not in Overlap.values:
            errors["overlap"] = ['Expected "allow" or "skip".']
        else:
            values["overlap"] = data["overlap"]

    if "paused" in data:
        if type(data["paused"]) is not bool:
            errors["paused"] = ["Expected a boolean."]
        else:
            values["paused"] = data["paused"]
    return values


def _timing(data: dict[str, Any], current: Schedule | None, errors: dict[str, list[str]]) -> dict[str, Any]:
    """The merged cron, interval_ms and timezone: exactly one of cron and interval_ms; timezone only with cron."""
    cron = current.cron if current else None
    interval_ms = current.interval_ms if current else None
    tz_name = current.timezone if current else None
    if "cron" in data and data["cron"] is not None:
        try:
            cron = timing.normalize_cron(data["cron"])
        except ValueError as exc:
            errors["cron"] = [str(exc)]
        if "interval_ms" not in data:
            interval_ms = None  # switching an interval schedule to cron
    elif "cron" in data:
        cron = None
    if "interval_ms" in data and data["interval_ms"] is not None:
        value = data["interval_ms"]
        if not _int(value) or not MIN_INTERVAL_MS <= value <= MAX_INTERVAL_MS:
            errors["interval_ms"] = [f"Expected an integer between {MIN_INTERVAL_MS} and {MAX_INTERVAL_MS}."]
        else:
            interval_ms = value
        if "cron" not in data:
            cron = None  # switching a cron schedule to an interval
            if "timezone" not in data:
                tz_name = None
    elif "interval_ms" in data:
        interval_ms = None
    if "timezone" in data:
        tz_value = data["timezone"]
        if tz_value is None:
            tz_name = None
        else:
            try:
                tz_name = timing.validate_timezone(tz_value)
            except ValueError as exc:
                errors["timezone"] = [str(exc)]
    has_cron = cron is not None or "cron" in errors
    has_interval = interval_ms is not None or "interval_ms" in errors
    if has_cron and has_interval:
        errors.setdefault("cron", []).append("Give either cron or interval_ms, not both.")
    elif not has_cron and not has_interval:
        errors["cron"] = ["One of cron or interval_ms is required."]
    elif has_interval and tz_name is not None and "timezone" in data:
        errors["timezone"] = ["timezone applies to cron schedules only."]
    if has_cron and tz_name is None:
        tz_name = "UTC"
    if not has_cron:
        tz_name = None
    return {"cron": cron, "interval_ms": interval_ms, "timezone": tz_name}


def _merged_template(
    data: dict[str, Any], current: Schedule | None, errors: dict[str, list[str]]
) -> dict[str, Any]:
    """The job template, merged key by key over the current one on PATCH."""
    template: dict[str, Any] = dict(current.job) if current else {}
    if "job" in data:
        given = data["job"]
        if given is None:
            given = {}
        if not isinstance(given, dict):
            errors["job"] = ["Expected an object."]
            given = {}
        for key in given.keys() - JOB_TEMPLATE_FIELDS:
            errors[f"job.{key}"] = ["Unknown field."]
        template.update({k: v for k, v in given.items() if k in JOB_TEMPLATE_FIELDS})
        template = {k: v for k, v in template.items() if v is not None}
    return template


def _queue(
    workspace: Workspace,
    data: dict[str, Any],
    current: Schedule | None,
    errors: dict[str, list[str]],
    *,
    has_http: bool,
) -> Queue | None:
    """The queue: named, or the workspace's `default` push queue when the template carries an http target."""
    queue: Queue | None = current.queue if current else None
    if "queue" in data or current is None:
        queue_name = data.get("queue")
        if queue_name is None:
            queue = None
            if not has_http:
                errors["queue"] = ["This field is required unless job.http is given."]
            else:
                queue = Queue.objects.filter(workspace=workspace, name="default").first()
        elif type(queue_name) is not str:
            errors["queue"] = ["Expected a queue name."]
        else:
            queue = Queue.objects.filter(workspace=workspace, name=queue_name).first()
            if queue is None:
                errors["queue"] = [f"Unknown queue '{queue_name}'."]
    return queue


def _check_template(
    workspace: Workspace, queue: Queue | None, template: dict[str, Any], errors: dict[str, list[str]]
) -> ApplicationError | None:
    """Template values: the same rules as a job body (jobs.validation), checked against the queue it will use.
    Field errors go into `errors` under `job.`; a 413 or 402 is returned, to be raised after them."""
    probe = queue or Queue(
        workspace=workspace,
        name="default",
        delivery=Queue.Delivery.PUSH,
        endpoint=None,
        retry_policy=dict(DEFAULT_RETRY_POLICY),
    )
    try:
        spec = _job_validator(workspace=workspace, queue=probe).validate_one(template)
        if spec.http is not None:
            template["http"] = spec.http
    except ValidationFailed as exc:
        errors.update({f"job.{k}": v for k, v in exc.details.items()})
    except (PayloadTooLarge, PlanLimit) as exc:
        details = dict(exc.details)
        if "field" in details:
            details["field"] = f"job.{details['field']}"
        exc.details = {(f"job.{k}" if k == "payload" else k): v for k, v in details.items()}
        return exc
    return None


def _job_validator(*, workspace: Workspace, queue: Queue) -> Any:
    # Imported late: jobs.validation pulls in the SSRF guard and settings that only matter for writes.
    from jobs.validation import JobValidator

    return JobValidator(workspace=workspace, queue=queue)
