"""Dashboard routes, included last at `/` (config/urls.py): /v1, /admin and /doc are matched before these.

Every page answers a missing object with the dashboard's 404 page (views.errors), and the last route catches the
paths nobody else claimed, except the API's and the admin's, which keep their own 404s.
"""

from django.urls import path, re_path

from dashboard.views import errors, jobs, queues, schedules, search, session, settings, workspace

app_name = "dashboard"

page = errors.with_dashboard_404

urlpatterns = [
    path("", page(jobs.queues), name="queues"),
    path("login", session.login, name="login"),
    path("logout", session.logout, name="logout"),
    path("events", session.events, name="events"),
    path("assets/<str:filename>", session.asset, name="asset"),
    path("queues/<name:name>", page(queues.queue_detail), name="queue"),
    path("queues/<name:name>/dlq", page(queues.dlq), name="dlq"),
    path("queues/<name:name>/dlq/<str:action>", page(queues.dlq_action), name="dlq-action"),
    path("queues/<name:name>/jobs/<jobid:job_id>", page(jobs.job_detail), name="job"),
    path("queues/<name:name>/jobs/<jobid:job_id>/<str:action>", page(jobs.job_action), name="job-action"),
    path("queues/<name:name>/<str:action>", page(queues.queue_action), name="queue-action"),
    path("jobs", page(jobs.jobs), name="jobs"),
    path("jobs/bulk", page(jobs.jobs_bulk), name="jobs-bulk"),
    path("search", page(search.search), name="search"),
    path("executions/<exeid:execution_id>/replay", page(jobs.replay), name="replay"),
    path("schedules", page(schedules.schedules), name="schedules"),
    path("schedules/new", page(schedules.schedule_edit), name="schedule-new"),
    path("schedules/<name:name>", page(schedules.schedule_detail), name="schedule"),
    path("schedules/<name:name>/edit", page(schedules.schedule_edit), name="schedule-edit"),
    path("schedules/<name:name>/<str:action>", page(schedules.schedule_action), name="schedule-action"),
    path("workers", page(settings.workers), name="workers"),
    path("alerts", page(workspace.alerts), name="alerts"),
    path("alerts/<alrid:alert_id>/edit", page(workspace.alert_edit), name="alert-edit"),
    path("alerts/<alrid:alert_id>/<str:action>", page(workspace.alert_action), name="alert-action"),
    path("webhooks", page(workspace.webhooks), name="webhooks"),
    path("webhooks/<whid:webhook_id>", page(workspace.webhook_detail), name="webhook"),
    path("webhooks/<whid:webhook_id>/<str:action>", page(workspace.webhook_action), name="webhook-action"),
    path("settings", page(settings.settings), name="settings"),
    path("settings/keys/<str:key_id>/revoke", page(settings.key_revoke), name="key-revoke"),
    path("usage", page(workspace.usage), name="usage"),
    path("billing/portal", page(workspace.billing_portal), name="billing-portal"),
    # Anything else outside /v1, /api and /admin: the dashboard's 404 page, not the API's JSON.
    re_path(r"^(?!v1(?:/|$)|api(?:/|$)|admin(?:/|$)).*$", errors.not_found, name="not-found"),
]
