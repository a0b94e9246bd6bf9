"""Staff admin for jobs, executions, events, workers and rollups. Lease tokens and the header values of a job's
`http` target are shown masked. A job is read-only (its executions inline, newest first): state changes only
through actions that call the jobs services, and the job's input was validated once, at enqueue."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.db.models import Model, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from config.exceptions import ApplicationError
from jobs.models import Execution, Job, Worker
from jobs.services import job_controls
from jobs.services.pull import worker_is_online
from jobs.specs import ENGINE_COLUMNS
from queues.admin_forms import ViewOnlyAdmin
from queues.masking import target_masked
from queues.models import Event, QueueMinuteStat


def _mask(token: str | None) -> str:
    return f"{token[:4]}…" if token else "—"


def _in_its_queue(control: Callable[..., Job]) -> Callable[[Job], object]:
    """A job control (retry, cancel) applied to one selected job, in its own workspace and queue."""
    return lambda job: control(workspace=job.workspace, queue=job.queue, job_id=job.id)


# Everything that the engine owns is read-only: a raw edit of `state` would skip the events, the lease fencing,
# the flow-parent release and the quota. State changes go through the actions below, which call the services.
# In model order; the lease token only masked.
JOB_ENGINE_FIELDS = tuple(
    "lease_token_masked" if f.name == "lease_token" else f.name
    for f in Job._meta.fields
    if f.name in ENGINE_COLUMNS
)
# The rest is the job's input, validated at enqueue (jobs.validation); an edit here would skip that, so it is
# shown, not editable. In model order; the http target with its header values masked.
JOB_INPUT_FIELDS = tuple(
    "http_masked" if f.name == "http" else f.name
    for f in Job._meta.fields
    if f.name not in ENGINE_COLUMNS and f.name != "lease_token"
)
# Rows handled per admin action: each is its own short transaction through the service.
ADMIN_ACTION_MAX = 1000
# Executions shown on a job's page: a job retried hundreds of times must not render hundreds of rows.
INLINE_EXECUTIONS_MAX = 50
EXECUTION_INLINE_FIELDS = (
    "id",
    "attempt",
    "status",
    "http_status",
    "duration_ms",
    "started_at",
    "completed_at",
    "worker_id",
    "error",
)


class _NewestExecutions(BaseInlineFormSet):
    def get_queryset(self) -> QuerySet[Execution]:
        queryset = super().get_queryset()
        if not queryset.query.is_sliced:
            # Kept as the formset's queryset, so the slice is read once (the forms index into its cache).
            self._queryset = queryset = queryset[:INLINE_EXECUTIONS_MAX]
        return queryset


class ExecutionInline(admin.TabularInline):
    """The job's attempts, newest first, read-only (the engine writes them)."""

    model = Execution
    formset = _NewestExecutions
    fields = EXECUTION_INLINE_FIELDS
    readonly_fields = EXECUTION_INLINE_FIELDS
    ordering = ("-attempt", "-started_at")  # jobs_exec_job_attempt, read backwards
    extra = 0
    show_change_link = True
    verbose_name_plural = f"executions (newest {INLINE_EXECUTIONS_MAX})"

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "queue",
        "name",
        "state",
        "priority",
        "attempts",
        "max_attempts",
        "run_at",
        "created_at",
    )
    list_filter = ("state", "created_at")
    search_fields = ("id", "name", "idempotency_key", "group")
    raw_id_fields = ("workspace", "queue", "parent")
    readonly_fields = (*JOB_INPUT_FIELDS, *JOB_ENGINE_FIELDS)
    exclude = ("lease_token", "http")
    inlines = (ExecutionInline,)
    list_select_related = ("queue", "workspace")
    show_full_result_count = False  # COUNT(*) over a million-row table on every page is too slow
    actions = ("retry_jobs", "cancel_jobs", "replay_jobs")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # jobs are enqueued through the API (quota, validation, events)

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # The changelist (and its actions) stays; a job's own page is a view: even an unchanged save would write
        # a stale copy of the row over the engine's.
        return obj is None and super().has_change_permission(request)

    @admin.display(description="lease token")
    def lease_token_masked(self, obj: Job) -> str:
        return _mask(obj.lease_token)

    @admin.display(description="http (header values masked)")
    def http_masked(self, obj: Job) -> object:
        return target_masked(obj.http)

    def _each(
        self, request: HttpRequest, queryset: QuerySet[Job], verb: str, apply: Callable[[Job], object]
    ) -> None:
        done, refused = 0, []
        for job in queryset.select_related("workspace", "queue")[:ADMIN_ACTION_MAX]:
            try:
                apply(job)
                done += 1
            except ApplicationError as exc:
                refused.append(f"{job.id}: {exc.message}")
        self.message_user(request, f"{verb} {done} job(s).", messages.SUCCESS if done else messages.WARNING)
        if refused:
            shown = "; ".join(refused[:10]) + (
                f" (and {len(refused) - 10} more)" if len(refused) > 10 else ""
            )
            self.message_user(request, f"Refused {len(refused)}: {shown}", messages.WARNING)

    @admin.action(description="Retry the selected jobs (failed/completed/cancelled -> waiting)")
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, "Retried", _in_its_queue(job_controls.job_retry))

    @admin.action(description="Cancel the selected jobs (waiting/delayed/active -> cancelled)")
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, "Cancelled", _in_its_queue(job_controls.job_cancel))

    @admin.action(description="Replay the selected jobs (a new job from each one's last attempt)")
    def replay_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        def replay(job: Job) -> object:
            execution_id = job.execution_id or (
                Execution.objects.filter(job=job).order_by("-attempt").values_list("id", flat=True).first()
            )
            if execution_id is None:
                raise ApplicationError("It has no attempt to replay yet.")
            return job_controls.execution_replay(workspace=job.workspace, execution_id=execution_id)

        self._each(request, queryset, "Replayed", replay)


@admin.register(Execution)
class ExecutionAdmin(ViewOnlyAdmin):
    list_display = ("id", "job_id", "queue", "attempt", "status", "http_status", "duration_ms", "started_at")
    list_filter = ("status", "started_at")
    search_fields = ("id", "job__id")
    raw_id_fields = ("workspace", "job", "queue")
    # An execution is the record of an attempt: the engine writes it, staff only read it.
    readonly_fields = (
        "id",
        "workspace",
        "job",
        "queue",
        "schedule_id",
        "attempt",
        "status",
        "lease_token_masked",
        "started_at",
        "completed_at",
        "duration_ms",
        "http_status",
        "response_body",
        "error",
        "worker_id",
        "replay_of",
    )
    exclude = ("lease_token",)
    list_select_related = ("queue",)
    show_full_result_count = False

    @admin.display(description="lease token")
    def lease_token_masked(self, obj: Execution) -> str:
        return _mask(obj.lease_token)


@admin.register(Event)
class EventAdmin(ViewOnlyAdmin):
    list_display = ("id", "type", "queue_name", "job_id", "created_at")
    list_filter = ("type",)
    search_fields = ("id", "job_id", "queue_name")
    raw_id_fields = ("workspace",)
    readonly_fields = ("id", "workspace", "type", "queue_name", "job_id", "data", "created_at")
    show_full_result_count = False


@admin.register(Worker)
class WorkerAdmin(ViewOnlyAdmin):
    list_display = ("id", "name", "hostname", "concurrency", "status", "last_seen_at", "created_at")
    search_fields = ("id", "name", "hostname")
    raw_id_fields = ("workspace",)
    readonly_fields = ("id", "created_at", "last_seen_at")

    @admin.display(description="status")
    def status(self, obj: Worker) -> str:
        return "online" if worker_is_online(obj) else "offline"


@admin.register(QueueMinuteStat)
class QueueMinuteStatAdmin(ViewOnlyAdmin):
    list_display = ("queue", "minute", "enqueued", "completed", "failed", "timeout", "duration_count")
    list_filter = ("minute",)
    raw_id_fields = ("workspace", "queue")
    readonly_fields = ("duration_hist",)
