"""Dashboard routes, included last at `/` (config/urls.py): /v1, /admin and /doc are matched before these."""

from django.urls import path

from dashboard.views import jobs, session, workspace

app_name = "dashboard"

urlpatterns = [
    path("", jobs.queues, name="queues"),
    path("login", session.login, name="login"),
    path("logout", session.logout, name="logout"),
    path("events", session.events, name="events"),
    path("assets/<str:filename>", session.asset, name="asset"),
    path("queues/<name:name>/dlq", jobs.dlq, name="dlq"),
    path("queues/<name:name>/dlq/<str:action>", jobs.dlq_action, name="dlq-action"),
    path("queues/<name:name>/jobs/<jobid:job_id>", jobs.job_detail, name="job"),
    path("queues/<name:name>/jobs/<jobid:job_id>/<str:action>", jobs.job_action, name="job-action"),
    path("queues/<name:name>/<str:action>", jobs.queue_action, name="queue-action"),
    path("jobs", jobs.jobs, name="jobs"),
    path("executions/<exeid:execution_id>/replay", jobs.replay, name="replay"),
    path("schedules", workspace.schedules, name="schedules"),
    path("schedules/<name:name>/<str:action>", workspace.schedule_action, name="schedule-action"),
    path("alerts", workspace.alerts, name="alerts"),
    path("alerts/<alrid:alert_id>/delete", workspace.alert_delete, name="alert-delete"),
    path("webhooks", workspace.webhooks, name="webhooks"),
    path("webhooks/<whid:webhook_id>/delete", workspace.webhook_delete, name="webhook-delete"),
    path("usage", workspace.usage, name="usage"),
    path("billing/portal", workspace.billing_portal, name="billing-portal"),
]
