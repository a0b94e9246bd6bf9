"""Schedule routes (API.md "Schedules"): thin views over schedules.services and schedules.selectors."""

from __future__ import annotations

from collections.abc import Callable

from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from config.api import WorkspaceViewSet, error_responses, list_envelope
from config.exceptions import BadRequest, ValidationFailed
from config.idempotency import creates
from config.pagination import paginate
from jobs.serializers import JobSchema, job_to_dict

from . import selectors, services, timing
from .models import Schedule
from .serializers import (
    PreviewSchema,
    ScheduleInSchema,
    ScheduleSchema,
    fire_time_to_dict,
    schedule_to_dict,
)

MAX_PREVIEW = 100
MAX_NAME_FILTER_CHARS = 100
_STATUSES = {"active": False, "paused": True}  # ?status= -> Schedule.paused
_LIMIT = OpenApiParameter("limit", int, description="1-1000, default 50")
_CURSOR = OpenApiParameter("cursor", str)


def _switch(change: Callable[..., Schedule], description: str) -> Callable[..., Response]:
    """Pause or resume: no body, answered with the schedule; only what they do differs."""

    @extend_schema(
        request=None,
        responses={200: ScheduleSchema, **error_responses(401, 404)},
        description=description,
    )
    def action(self: ScheduleViewSet, request: Request, name: str) -> Response:
        self.strict_data(request, set())
        return Response(schedule_to_dict(change(workspace=self.workspace, schedule=self._get(name))))

    return action


@extend_schema(tags=["Schedules"])
class ScheduleViewSet(WorkspaceViewSet):
    """Cron and interval schedules; addressed by name."""

    def _body(self, request: Request) -> dict:
        # Unknown and read-only fields are told apart by the service's validation, so take every key here.
        data = request.data if request.body else {}
        if not isinstance(data, dict):
            raise ValidationFailed(
                "The body must be a JSON object.", details={"non_field_errors": ["Expected a JSON object."]}
            )
        return data

    def _get(self, name: str) -> Schedule:
        return selectors.schedule_get(workspace=self.workspace, name=name)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status",
                str,
                enum=list(_STATUSES),
                description="`active` (not paused) or `paused`; anything else is 400 BAD_REQUEST.",
            ),
            OpenApiParameter("tag", str, description="Only schedules whose job template carries this tag."),
            OpenApiParameter(
                "name",
                str,
                description=f"Case-insensitive substring of the name (1-{MAX_NAME_FILTER_CHARS} characters).",
            ),
            _LIMIT,
            _CURSOR,
        ],
        responses={200: list_envelope("ScheduleList", ScheduleSchema), **error_responses(400, 401)},
        description="The workspace's schedules by name (keyset pagination on the name); filters combine with AND. "
        "`name` is a plain substring, not a regular expression (seed 003 allowed a regex: a user-supplied "
        "regex is a denial-of-service risk, so Spindle matches literally).",
    )
    def list(self, request: Request) -> Response:
        params = request.query_params
        status_value = params.get("status") or None
        if status_value is not None and status_value not in _STATUSES:
            raise BadRequest(
                "`status` must be active or paused.", details={"status": ["Expected active or paused."]}
            )
        tag = params.get("tag") or None
        name = params.get("name") or None
        for key, value, limit in (("tag", tag, 64), ("name", name, MAX_NAME_FILTER_CHARS)):
            if value is not None and (len(value) > limit or "\x00" in value):
                raise BadRequest(
                    f"`{key}` is too long or malformed.", details={key: [f"At most {limit} characters."]}
                )
        queryset = selectors.schedule_list(
            workspace=self.workspace,
            paused=None if status_value is None else _STATUSES[status_value],
            tag=tag,
            name=name,
        )
        page = paginate(
            queryset,
            params,
            lambda rows: [schedule_to_dict(s) for s in rows],
            field="name",
            newest_first=False,
        )
        return Response(page)

    @creates(
        ScheduleInSchema,
        ScheduleSchema,
        errors=(400, 401, 402, 409, 413, 415),
    )
    def create(self, request: Request) -> Response:
        data = self._body(request)
        schedule = services.schedule_create(workspace=self.workspace, data=data)
        return Response(schedule_to_dict(schedule), status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: ScheduleSchema, **error_responses(401, 404)})
    def retrieve(self, request: Request, name: str) -> Response:
        return Response(schedule_to_dict(self._get(name)))

    @extend_schema(
        request=ScheduleInSchema(partial=True),
        responses={200: ScheduleSchema, **error_responses(400, 401, 402, 404, 409, 413, 415)},
    )
    def partial_update(self, request: Request, name: str) -> Response:
        schedule = self._get(name)
        data = self._body(request)
        schedule = services.schedule_update(workspace=self.workspace, schedule=schedule, data=data)
        return Response(schedule_to_dict(schedule))

    @extend_schema(
        request=ScheduleInSchema,
        responses={200: ScheduleSchema, **error_responses(400, 401, 402, 404, 409, 413, 415)},
        description="Replace the whole schedule: the body is validated exactly as a create (same 400/402 "
        "rules). `name` may be left out (the schedule keeps its name) or changed (a rename; "
        '409 if taken). Fields left out take their create defaults (`description` "", '
        "`overlap` allow, `paused` false, the job template only what is given). "
        "`next_run_at` is recomputed when the timing changes or the schedule is unpaused; "
        "`last_run_at`, `last_job_id` and the runs stay.",
    )
    def update(self, request: Request, name: str) -> Response:
        schedule = self._get(name)
        data = self._body(request)
        schedule = services.schedule_replace(workspace=self.workspace, schedule=schedule, data=data)
        return Response(schedule_to_dict(schedule))

    @extend_schema(responses={204: None, **error_responses(401, 404)})
    def destroy(self, request: Request, name: str) -> Response:
        services.schedule_delete(workspace=self.workspace, schedule=self._get(name))
        return Response(status=status.HTTP_204_NO_CONTENT)

    pause = _switch(services.schedule_pause, "Stop firing (PATCH or POST; idempotent).")
    resume = _switch(
        services.schedule_resume,
        "Fire again from the next tick after now; ticks missed while paused are not caught up.",
    )

    @creates(
        None,
        inline_serializer("ScheduleTriggerOut", fields={"job": JobSchema()}),
        errors=(401, 402, 404, 422),
        description="Run now: enqueue one job from the template (even while paused; overlap is not checked). "
        'next_run_at is unchanged; last_run_at and last_job_id are updated. 201 `{"job": {...}}`.',
    )
    def trigger(self, request: Request, name: str) -> Response:
        self.strict_data(request, set())
        schedule = self._get(name)
        job = services.schedule_trigger(workspace=self.workspace, schedule=schedule)
        body = job_to_dict(job, queue_name=schedule.queue.name)
        body["schedule"] = schedule.name
        return Response({"job": body}, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[_LIMIT, _CURSOR],
        responses={200: list_envelope("ScheduleRunList", JobSchema), **error_responses(400, 401, 404)},
        description="The jobs this schedule enqueued, newest first.",
    )
    def runs(self, request: Request, name: str) -> Response:
        schedule = self._get(name)

        def render(rows):
            out = []
            for job in rows:
                item = job_to_dict(job)
                item["schedule"] = schedule.name
                out.append(item)
            return out

        return Response(
            paginate(
                selectors.schedule_runs(workspace=self.workspace, schedule=schedule),
                request.query_params,
                render,
            )
        )

    @extend_schema(
        parameters=[OpenApiParameter("count", int, description=f"1-{MAX_PREVIEW}, default 5")],
        responses={200: PreviewSchema, **error_responses(400, 401, 404)},
        description="The next fire times, in UTC (`at`) and in the schedule's timezone (`local`).",
    )
    def preview(self, request: Request, name: str) -> Response:
        schedule = self._get(name)
        raw = request.query_params.get("count", "5")
        try:
            count = int(raw)
        except ValueError:
            count = 0
        if not 1 <= count <= MAX_PREVIEW:
            raise BadRequest(
                f"`count` must be an integer between 1 and {MAX_PREVIEW}.",
                details={"count": [f"Expected 1..{MAX_PREVIEW}."]},
            )
        now = timezone.now()
        times = timing.upcoming(
            cron=schedule.cron,
            interval_ms=schedule.interval_ms,
            tz_name=schedule.timezone,
            after=now,
            count=count,
            first=None if schedule.paused else schedule.next_run_at,
        )
        return Response({"data": [fire_time_to_dict(t, schedule.timezone) for t in times]})
