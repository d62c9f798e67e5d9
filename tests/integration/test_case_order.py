"""The Case's ``order`` as the ledger makes it: which payment is the order in force, and whether
it is a new order or a renewal (policies refund them differently: 003 refunds no renewal paid
via OneBip, the money-back windows count from a new order). Stripe says so on the invoice; for
PayPal, a payment is a renewal when the subscription was paid before it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.models import Payment, Subscription, SupportRequest
from service.bootstrap import Container
from workers.cases import cancellation_case, refund_case

MERCHANT = "theopenhost"
SUB = "I-ORDER0001"
START = datetime(2026, 6, 1, 10, tzinfo=UTC)


def _sale(provider_id: str, paid_at: datetime | None, amount: int = 1000) -> Payment:
    return Payment(merchant=MERCHANT, provider="paypal", provider_id=provider_id,
                   version_at=START, version_rank=0, version_event=f"WH-{provider_id}",
                   livemode=False, kind="sale", subscription_ref=SUB, status="completed",
                   amount=amount, currency="USD", paid_at=paid_at)


def _ledger(container: Container, *payments: Payment) -> None:
    with container.sessions() as session, session.begin():
        session.add(Subscription(
            merchant=MERCHANT, provider="paypal", provider_id=SUB, version_at=START,
            version_rank=0, version_event="WH-sub", livemode=False, customer_ref=None,
            status="CANCELLED", amount=1000, currency="USD", interval="month",
            interval_count=1, started_at=START, canceled_at=START + timedelta(days=70)))
        session.add_all(payments)


def _request(kind: str, payment_ref: str | None = None) -> SupportRequest:
    body: dict[str, Any] = {"identity": {"verified": True}, "reason": "test"}
    if kind == "cancellation":
        body["subscription"] = SUB
    return SupportRequest(id=f"req-{kind}", merchant=MERCHANT, kind=kind, account_ref=SUB,
                          payment_ref=payment_ref, body=body, filed_by="test",
                          created_at=START + timedelta(days=70))


def _order(container: Container, kind: str, payment_ref: str | None = None) -> dict[str, Any]:
    with container.sessions() as session, session.begin():
        build = cancellation_case if kind == "cancellation" else refund_case
        order: dict[str, Any] = build(session, _request(kind, payment_ref))["order"]
        return order


def test_a_paypal_payment_is_new_when_first_and_a_renewal_after_another(container):
    """The first sale of a subscription is a new order; each later one renews it."""
    _ledger(container, _sale("SALE-1", START), _sale("SALE-2", START + timedelta(days=31)),
            _sale("SALE-3", START + timedelta(days=61)))
    assert _order(container, "refund", "SALE-1")["type"] == "new"
    assert _order(container, "refund", "SALE-2")["type"] == "renewal"
    assert _order(container, "refund", "SALE-3")["type"] == "renewal"


def test_a_cancellation_is_decided_on_the_latest_payment(container):
    """The order in force is the subscription's payment made last, whatever order they were
    recorded in: here a renewal, for its own amount and date."""
    _ledger(container, _sale("SALE-B", START + timedelta(days=61), amount=1200),
            _sale("SALE-A", START), _sale("SALE-C", START + timedelta(days=31)))
    order = _order(container, "cancellation")
    assert (order["type"], order["amount"], order["ordered_at"]) == (
        "renewal", {"amount": 1200, "currency": "USD"}, "2026-08-01T10:00:00Z")


def test_of_two_payments_in_the_same_second_the_greater_id_is_the_latest(container):
    """Two payments stamped the same second (a manual payment beside the automatic one): the
    order does not depend on how the database returns them."""
    same = START + timedelta(days=31)
    _ledger(container, _sale("SALE-M", same, amount=1300), _sale("SALE-A", START),
            _sale("SALE-Z", same, amount=1500))
    assert _order(container, "cancellation")["amount"]["amount"] == 1500


def test_a_payment_without_a_date_is_the_order_only_when_none_has_one(container):
    """A payment whose time the provider did not give is never taken over a dated one, and
    does not make a dated one a renewal."""
    _ledger(container, _sale("SALE-UNDATED", None, amount=900), _sale("SALE-1", START))
    order = _order(container, "cancellation")
    assert (order["type"], order["amount"]["amount"]) == ("new", 1000)
