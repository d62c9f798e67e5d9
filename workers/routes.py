"""The one table from event type to handler, read top to bottom.

Checked at import: every handler is callable and every type is spelt as the provider spells it,
so a typo fails at start-up rather than silently ignoring real events in production. Any event
type not listed is stored and marked ignored.
"""

from __future__ import annotations

import re

from workers import paypal_events as paypal
from workers import stripe_events as stripe
from workers.context import Handler

ROUTES: dict[tuple[str, str], Handler] = {
    # Stripe: subscriptions
    ("stripe", "customer.subscription.created"): stripe.subscription,
    ("stripe", "customer.subscription.updated"): stripe.subscription,
    ("stripe", "customer.subscription.deleted"): stripe.subscription,
    # Stripe: invoices (upcoming ones have no id and only move next_billing_at)
    ("stripe", "invoice.created"): stripe.invoice,
    ("stripe", "invoice.finalized"): stripe.invoice,
    ("stripe", "invoice.paid"): stripe.invoice,
    ("stripe", "invoice.voided"): stripe.invoice,
    ("stripe", "invoice.payment_failed"): stripe.invoice,
    ("stripe", "invoice.upcoming"): stripe.invoice,
    # Stripe: money movements
    ("stripe", "charge.succeeded"): stripe.charge,
    ("stripe", "charge.refunded"): stripe.charge,
    ("stripe", "charge.dispute.created"): stripe.dispute,
    ("stripe", "charge.dispute.updated"): stripe.dispute,
    ("stripe", "charge.dispute.closed"): stripe.dispute,
    ("stripe", "charge.dispute.funds_withdrawn"): stripe.dispute,
    ("stripe", "charge.dispute.funds_reinstated"): stripe.dispute,
    ("stripe", "refund.created"): stripe.refund,
    ("stripe", "refund.updated"): stripe.refund,
    ("stripe", "refund.failed"): stripe.refund,
    # PayPal: subscriptions (Subscriptions API v1)
    ("paypal", "BILLING.SUBSCRIPTION.CREATED"): paypal.subscription,
    ("paypal", "BILLING.SUBSCRIPTION.ACTIVATED"): paypal.subscription,
    ("paypal", "BILLING.SUBSCRIPTION.UPDATED"): paypal.subscription,
    ("paypal", "BILLING.SUBSCRIPTION.CANCELLED"): paypal.subscription,
    ("paypal", "BILLING.SUBSCRIPTION.SUSPENDED"): paypal.subscription,
    ("paypal", "BILLING.SUBSCRIPTION.EXPIRED"): paypal.subscription,
    ("paypal", "BILLING.SUBSCRIPTION.PAYMENT.FAILED"): paypal.subscription,
    # PayPal: v1 sales (subscription payments) and v2 captures
    ("paypal", "PAYMENT.SALE.COMPLETED"): paypal.sale,
    ("paypal", "PAYMENT.SALE.REFUNDED"): paypal.sale_refund,
    ("paypal", "PAYMENT.SALE.REVERSED"): paypal.sale,
    ("paypal", "PAYMENT.CAPTURE.COMPLETED"): paypal.capture,
    ("paypal", "PAYMENT.CAPTURE.REFUNDED"): paypal.capture_refund,
    ("paypal", "PAYMENT.CAPTURE.REVERSED"): paypal.capture,
    # PayPal: disputes (Disputes API v1) on a sale or capture
    ("paypal", "CUSTOMER.DISPUTE.CREATED"): paypal.dispute,
    ("paypal", "CUSTOMER.DISPUTE.UPDATED"): paypal.dispute,
    ("paypal", "CUSTOMER.DISPUTE.RESOLVED"): paypal.dispute,
}

_SPELLING = {"stripe": re.compile(r"^[a-z_]+(\.[a-z_]+)+$"),
             "paypal": re.compile(r"^[A-Z]+(\.[A-Z_]+)+$")}


def _check(routes: dict[tuple[str, str], Handler]) -> None:
    for (provider, event_type), handler in routes.items():
        if provider not in _SPELLING or not _SPELLING[provider].match(event_type):
            raise RuntimeError(f"route {provider}:{event_type} is misspelt")
        if not callable(handler):
            raise RuntimeError(f"route {provider}:{event_type} has no callable handler")


_check(ROUTES)


def handler_for(provider: str, event_type: str) -> Handler | None:
    return ROUTES.get((provider, event_type))
