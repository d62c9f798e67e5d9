"""Case JSON for the execution tests: TheOpenHost's money-back guarantee and overpayments."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

ORDERED = datetime.fromisoformat("2025-03-01T09:00:00+00:00")


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def guarantee_claim(amount: int, currency: str = "USD", provider: str = "stripe",
                    addons: tuple[str, ...] = ()) -> dict[str, Any]:
    """A claim on day 3 of a new web-hosting order: full refund, less any add-on deductions."""
    return {
        "request": {"kind": "refund", "received_at": iso(ORDERED + timedelta(days=3)),
                    "reason": "the service does not suit me",
                    "identity": {"username": "alice", "main_domain": "alice.example",
                                 "invoice_number": "INV-3", "date_of_birth": "1980-02-03",
                                 "verified": True}},
        "account": {},
        "order": {"type": "new", "product_category": "web_hosting", "ordered_at": iso(ORDERED),
                  "amount": {"amount": amount, "currency": currency}, "term_months": 1,
                  "payment_provider": provider, "payment_method": "card", "addons": list(addons)},
    }


def overpayment(age: timedelta, over: int = 1000) -> dict[str, Any]:
    """A PayPal subscription overpayment claimed ``age`` after it was received."""
    return {
        "request": {"kind": "overpayment", "received_at": iso(ORDERED + age),
                    "reason": "subscription was not cancelled",
                    "identity": {"username": "alice", "main_domain": "alice.example"}},
        "account": {},
        "payment": {"amount": {"amount": 3000, "currency": "USD"}, "received_at": iso(ORDERED),
                    "overpaid_amount": {"amount": over, "currency": "USD"},
                    "provider": "paypal", "via_subscription": True},
    }


DECIDED_AT = ORDERED + timedelta(days=3, hours=1)
