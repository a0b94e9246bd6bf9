"""The Stripe client, built from settings; billing refuses clearly when Stripe is not configured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from config.exceptions import BillingNotConfigured

if TYPE_CHECKING:
    import stripe

STRIPE_TIMEOUT_S = 10


def billing_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY)


def stripe_client() -> stripe.StripeClient:
    """A StripeClient with a bounded timeout; STRIPE_API_BASE points it elsewhere (tests use a local fake)."""
    if not settings.STRIPE_SECRET_KEY:
        raise BillingNotConfigured(
            "Billing is not configured on this Spindle installation (STRIPE_SECRET_KEY)."
        )
    # Imported on use: the library costs ~30 MB in every web and worker process that never bills.
    import stripe

    base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        base_addresses=base,
        max_network_retries=1,
        http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT_S),
    )
