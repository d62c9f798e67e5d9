"""A realistic stream of webhook deliveries: many customers' subscription life cycles, in the
order the providers would send them, across every seed merchant, Stripe and PayPal.

One customer in eight is the classic PayPal overpayment: the subscription was cancelled on our
side early in its first cycle, PayPal billed the second cycle anyway, and the gateway refunds
that sale (less the 5% fee, TheOpenHost's 003 §1.7b-d) through the provider, so a stream
exercises money moving as well as the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sandbox import samples

MERCHANTS = ("oneclick", "digitalcare", "cloudbehind", "theopenhost")
OVERPAYMENT_MERCHANT = "theopenhost"  # the pack whose clauses refund PayPal overpayments
_DAY = 86_400


@dataclass(frozen=True)
class Delivery:
    """One event as its provider would deliver it to one merchant's endpoint."""

    provider: str
    merchant: str
    event: dict[str, Any]

    @property
    def key(self) -> tuple[str, str, str]:
        """What the inbox is unique on."""
        return (self.merchant, self.provider, str(self.event["id"]))


def realistic_stream(customers: int, now: int, tag: str = "s") -> list[Delivery]:
    """``customers`` life cycles, each customer's events oldest first, customers interleaved
    (as a provider's delivery queue is); every eighth customer is an overpayment."""
    lives = [_life(i, now, f"{tag}{i}") for i in range(customers)]
    out: list[Delivery] = []
    for step in range(max(len(life) for life in lives)):
        out += [life[step] for life in lives if step < len(life)]
    return out


def overpaid_sales(stream: list[Delivery]) -> set[str]:
    """The PayPal sales in ``stream`` made after their subscription was cancelled."""
    ended = {d.event["resource"]["id"]: d.event["resource"]["status_update_time"] for d in stream
             if d.event.get("event_type") == "BILLING.SUBSCRIPTION.CANCELLED"}
    return {d.event["resource"]["id"] for d in stream
            if d.event.get("event_type") == "PAYMENT.SALE.COMPLETED"
            and d.event["resource"]["create_time"] > ended.get(
                d.event["resource"]["billing_agreement_id"], "9999")}


def _life(i: int, now: int, key: str) -> list[Delivery]:
    merchant = MERCHANTS[i % len(MERCHANTS)]
    amount = 1000 + (i * 37 % 40) * 100
    currency = ("usd", "eur", "gbp")[i % 3]
    kind = i % 8
    if kind == 7:
        return overpayment_life(key, now, amount)
    if kind < 4:
        s = samples.Scenario(key=key, amount=amount, currency=currency,
                             customer_email=f"c{i}@example.com")
        return [Delivery("stripe", merchant, e) for e in samples.stripe_lifecycle(s)]
    s = samples.Scenario(key=key, amount=amount, currency=currency, payment_method="paypal",
                         customer_email=f"c{i}@example.com")
    return [Delivery("paypal", merchant, e) for e in samples.paypal_lifecycle(s)]


def overpayment_life(key: str, now: int, amount: int = 2000) -> list[Delivery]:
    """Signed up 40 days ago, cancelled a day later, billed again by PayPal ~10 days ago."""
    s = samples.Scenario(key=key, amount=amount, payment_method="paypal",
                         period_start=now - 40 * _DAY)
    cancelled = samples.paypal_event("BILLING.SUBSCRIPTION.CANCELLED", s)
    ended = datetime.fromtimestamp(s.period(1)[0] + _DAY, UTC)
    cancelled["resource"]["status_update_time"] = cancelled["resource"]["update_time"] = (
        ended.isoformat().replace("+00:00", "Z"))
    sale = samples.paypal_event("PAYMENT.SALE.COMPLETED", s, cycle=2)
    events = [samples.paypal_event("BILLING.SUBSCRIPTION.CREATED", s),
              samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", s),
              samples.paypal_event("PAYMENT.SALE.COMPLETED", s), cancelled, sale]
    return [Delivery("paypal", OVERPAYMENT_MERCHANT, e) for e in events]
