"""The sandbox's customers: paid subscriptions put into the ledger through signed webhooks, as
Stripe and PayPal would send them, dated a few days before now, so that a refund request filed
at once is inside the merchants' money-back windows.

The fake providers observe every event they are said to have sent, on the merchant's own
account, so refunds, reports and backfill find the same payments at the "provider".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select

from ledger.models import Payment
from policy.money import Money
from sandbox import samples
from sandbox.fake_providers import FakeProviders
from sandbox.simulate import send_event
from service.config import Settings

DAY = 86400
_EVENTS = {
    "stripe": ("customer.subscription.created", "invoice.paid", "charge.succeeded"),
    "paypal": ("BILLING.SUBSCRIPTION.CREATED", "BILLING.SUBSCRIPTION.ACTIVATED",
               "PAYMENT.SALE.COMPLETED"),
}


@dataclass(frozen=True)
class Seed:
    """A customer who subscribed and paid ``amount`` (USD cents) ``days_ago`` days ago."""

    merchant: str
    provider: str
    name: str
    email: str
    amount: int
    days_ago: float


SEEDS: tuple[Seed, ...] = (
    Seed("theopenhost", "stripe", "Ada Lovelace", "ada@example.com", 6000, 2),
    Seed("theopenhost", "stripe", "Grace Hopper", "grace@example.com", 4500, 3),
    Seed("theopenhost", "paypal", "Alan Turing", "alan@example.com", 3000, 4),
    Seed("cloudbehind", "stripe", "Katherine Johnson", "katherine@example.com", 999, 1),
    Seed("digitalcare", "paypal", "Edsger Dijkstra", "edsger@example.com", 12000, 2),
    Seed("oneclick", "stripe", "Barbara Liskov", "barbara@example.com", 25000, 2),
)


@dataclass(frozen=True)
class Paid:
    """A seeded payment as the ledger holds it: what a refund request names."""

    merchant: str
    provider: str
    name: str
    account: str  # the customer (Stripe cus_..., PayPal payer id) a request names
    payment: str  # the provider's payment id
    amount: Money
    paid_at: datetime


def scenario(seed: Seed, now: float) -> samples.Scenario:
    return samples.Scenario(
        key=f"sandbox-{seed.merchant}-{seed.email}", customer_email=seed.email,
        customer_name=seed.name, amount=seed.amount, currency="usd",
        period_start=int(now - seed.days_ago * DAY),
        payment_method="paypal" if seed.provider == "paypal" else "card")


def send_seeds(settings: Settings, data_dir: Path, base: str, fake: FakeProviders,
               seeds: tuple[Seed, ...] = SEEDS, now: float | None = None) -> None:
    """Every seed's subscription, invoice and payment, signed and sent to the gateway at
    ``base``, and observed by the fake as sent on the merchant's account."""
    now = time.time() if now is None else now
    for seed in seeds:
        made = scenario(seed, now)
        merchant = settings.merchants[seed.merchant]
        account = (merchant.stripe.api_key if seed.provider == "stripe"
                   else merchant.paypal.client_id)
        for event_type in _EVENTS[seed.provider]:
            event = (samples.stripe_event(event_type, made) if seed.provider == "stripe"
                     else samples.paypal_event(event_type, made))
            fake.observe(event, account=account)
            result = send_event(settings, data_dir, seed.provider, seed.merchant, event, base)
            if result.status != 200:
                raise RuntimeError(f"the gateway refused a signed {event_type}: {result.body}")


def payments(sessions: Callable[[], Any], seeds: tuple[Seed, ...] = SEEDS) -> list[Paid]:
    """The seeded payments as the ledger holds them, in the order of ``seeds`` (one not
    processed yet is left out)."""
    found: list[Paid] = []
    with sessions() as session:
        for seed in seeds:
            made = scenario(seed, 0)  # ids come from the key alone
            payment_id = (made.stripe_id("charge") if seed.provider == "stripe"
                          else made.paypal_id("sale"))
            p = session.scalars(select(Payment).filter_by(
                merchant=seed.merchant, provider=seed.provider, provider_id=payment_id)).first()
            if p is not None:
                found.append(Paid(seed.merchant, seed.provider, seed.name,
                                  p.customer_ref or p.subscription_ref or "", p.provider_id,
                                  Money(p.amount, p.currency),
                                  (p.paid_at or datetime.now(UTC)).replace(tzinfo=UTC)))
    return found


def file_review(base: str, token: str, paid: Paid, timeout: float = 60.0) -> dict[str, Any]:
    """A refund request the merchant's policy leaves to a person (a product it does not
    know), filed and waited for until decided: the decision, waiting in GET /v1/reviews."""
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "sandbox-review",
               "X-Gateway-Actor": "sandbox"}
    filed = requests.post(f"{base}/v1/refund-requests", headers=headers, timeout=10, json={
        "account": paid.account, "payment": paid.payment, "reason": "the widget never worked",
        "product_category": "custom_widget"})
    if filed.status_code != 202:
        raise RuntimeError(f"filing the sandbox's review answered {filed.status_code}: "
                           f"{filed.text}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = requests.get(f"{base}/v1/refund-requests/{filed.json()['id']}",
                             headers=headers, timeout=10).json()
        if shown.get("decision") is not None:
            return dict(shown["decision"])
        if shown.get("status") == "failed":
            raise RuntimeError(f"the sandbox's review request failed: {shown.get('error')}")
        time.sleep(0.2)
    raise RuntimeError(f"the sandbox's review request was not decided in {timeout:.0f}s")
