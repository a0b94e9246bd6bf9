"""Dashboard routes, included last at `/` (config/urls.py): /v1, /admin and /doc are matched before these."""

from django.urls import path

from . import views

app_name = "dashboard"

urlpatterns = [
    path("", views.queues, name="queues"),
    path("login", views.login, name="login"),
    path("logout", views.logout, name="logout"),
    path("events", views.events, name="events"),
    path("assets/<str:filename>", views.asset, name="asset"),
    path("queues/<name:name>/dlq", views.dlq, name="dlq"),
    path("queues/<name:name>/dlq/<str:action>", views.dlq_action, name="dlq-action"),
    path("queues/<name:name>/jobs/<jobid:job_id>", views.job_detail, name="job"),
    path("queues/<name:name>/jobs/<jobid:job_id>/<str:action>", views.job_action, name="job-action"),
    path("queues/<name:name>/<str:action>", views.queue_action, name="queue-action"),
    path("jobs", views.jobs, name="jobs"),
    path("executions/<exeid:execution_id>/replay", views.replay, name="replay"),
    path("schedules", views.schedules, name="schedules"),
    path("schedules/<name:name>/<str:action>", views.schedule_action, name="schedule-action"),
    path("alerts", views.alerts, name="alerts"),
    path("alerts/<alrid:alert_id>/delete", views.alert_delete, name="alert-delete"),
    path("webhooks", views.webhooks, name="webhooks"),
    path("webhooks/<whid:webhook_id>/delete", views.webhook_delete, name="webhook-delete"),
    path("usage", views.usage, name="usage"),
    path("billing/portal", views.billing_portal, name="billing-portal"),
]
