from django.urls import path

from . import views

urlpatterns = [
    path("status", views.workspace_status, name="workspace-status"),
    path("billing/status", views.billing_status, name="billing-status"),
    path("billing/checkout", views.checkout, name="billing-checkout"),
    path("billing/portal", views.portal, name="billing-portal"),
    path("billing/stripe-webhook", views.stripe_webhook, name="stripe-webhook"),
]
