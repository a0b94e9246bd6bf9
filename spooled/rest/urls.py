"""The REST routes under /api/v1 (spooled.urls mounts them). Static paths come before `{id}` paths; no trailing
slashes (the SDK sends none, and a redirect would be an error to it)."""

from __future__ import annotations

from django.urls import path, re_path

from spooled.rest import (
    account,
    auth,
    dlq,
    jobs,
    leases,
    organizations,
    queues,
    schedules,
    webhooks_in,
    webhooks_out,
    workers,
)
from spooled.rest.errors import not_found

urlpatterns = [
    # jobs: static paths first
    path("jobs", jobs.JobsView.as_view()),
    path("jobs/stats", jobs.JobStatsView.as_view()),
    path("jobs/status", jobs.JobStatusView.as_view()),
    path("jobs/bulk", jobs.JobBulkView.as_view()),
    path("jobs/claim", leases.ClaimView.as_view()),
    path("jobs/dlq", dlq.DlqView.as_view()),
    path("jobs/dlq/retry", dlq.DlqRetryView.as_view()),
    path("jobs/dlq/purge", dlq.DlqPurgeView.as_view()),
    path("jobs/<str:job_id>", jobs.JobView.as_view()),
    path("jobs/<str:job_id>/retry", jobs.JobRetryView.as_view()),
    path("jobs/<str:job_id>/priority", jobs.JobPriorityView.as_view()),
    path("jobs/<str:job_id>/history", jobs.JobHistoryView.as_view()),
    path("jobs/<str:job_id>/complete", leases.CompleteView.as_view()),
    path("jobs/<str:job_id>/fail", leases.FailView.as_view()),
    path("jobs/<str:job_id>/heartbeat", leases.HeartbeatView.as_view()),
    # queues
    path("queues", queues.QueuesView.as_view()),
    path("queues/<str:name>", queues.QueueView.as_view()),
    path("queues/<str:name>/config", queues.QueueConfigView.as_view()),
    path("queues/<str:name>/stats", queues.QueueStatsView.as_view()),
    path("queues/<str:name>/pause", queues.QueuePauseView.as_view()),
    path("queues/<str:name>/resume", queues.QueueResumeView.as_view()),
    # workers
    path("workers", workers.WorkersView.as_view()),
    path("workers/register", workers.WorkerRegisterView.as_view()),
    path("workers/<str:worker_id>", workers.WorkerView.as_view()),
    path("workers/<str:worker_id>/heartbeat", workers.WorkerHeartbeatView.as_view()),
    path("workers/<str:worker_id>/deregister", workers.WorkerDeregisterView.as_view()),
    # schedules
    path("schedules", schedules.SchedulesView.as_view()),
    path("schedules/<str:schedule_id>", schedules.ScheduleView.as_view()),
    path("schedules/<str:schedule_id>/pause", schedules.SchedulePauseView.as_view()),
    path("schedules/<str:schedule_id>/resume", schedules.ScheduleResumeView.as_view()),
    path("schedules/<str:schedule_id>/trigger", schedules.ScheduleTriggerView.as_view()),
    path("schedules/<str:schedule_id>/history", schedules.ScheduleHistoryView.as_view()),
    # outgoing webhooks
    path("outgoing-webhooks", webhooks_out.WebhooksView.as_view()),
    path("outgoing-webhooks/<str:webhook_id>", webhooks_out.WebhookView.as_view()),
    path("outgoing-webhooks/<str:webhook_id>/test", webhooks_out.WebhookTestView.as_view()),
    path("outgoing-webhooks/<str:webhook_id>/deliveries", webhooks_out.WebhookDeliveriesView.as_view()),
    path(
        "outgoing-webhooks/<str:webhook_id>/retry/<str:delivery_id>", webhooks_out.WebhookRetryView.as_view()
    ),
    # auth
    path("auth/login", auth.LoginView.as_view()),
    path("auth/refresh", auth.RefreshView.as_view()),
    path("auth/logout", auth.LogoutView.as_view()),
    path("auth/me", auth.MeView.as_view()),
    path("auth/validate", auth.ValidateView.as_view()),
    path("auth/email/start", auth.EmailStartView.as_view()),
    path("auth/email/verify", auth.EmailVerifyView.as_view()),
    # api keys and billing
    path("api-keys", account.ApiKeysView.as_view()),
    path("api-keys/<str:key_id>", account.ApiKeyView.as_view()),
    path("billing/status", account.BillingStatusView.as_view()),
    path("billing/portal", account.BillingPortalView.as_view()),
    # inbound webhooks: static paths first
    path("webhooks/deliveries", webhooks_in.InboundDeliveriesView.as_view()),
    path("webhooks/settings", webhooks_in.IngestSettingsView.as_view()),
    path("webhooks/<str:org_id>/github", webhooks_in.GithubIngestView.as_view()),
    path("webhooks/<str:org_id>/stripe", webhooks_in.StripeIngestView.as_view()),
    path("webhooks/<str:org_id>/custom", webhooks_in.CustomIngestView.as_view()),
    path("organizations/webhook-token", webhooks_in.WebhookTokenView.as_view()),
    path("organizations/webhook-token/regenerate", webhooks_in.WebhookTokenRegenerateView.as_view()),
    path("organizations", organizations.OrganizationsView.as_view()),
    # Static paths before `{org_id}`. Spooled Cloud's sign-up slug helpers are not served (workspaces are
    # created through /v1): they answer as any unknown route, not as an organization named "check-slug".
    path("organizations/usage", organizations.OrganizationUsageView.as_view()),
    path("organizations/check-slug", not_found),
    path("organizations/generate-slug", not_found),
    path("organizations/<str:org_id>", organizations.OrganizationView.as_view()),
    path("organizations/<str:org_id>/members", organizations.OrganizationMembersView.as_view()),
]

# Last: any other path under /api/v1 is a 404 in Spooled's shape, not Spindle's envelope.
fallback = [re_path(r"^.*$", not_found)]
