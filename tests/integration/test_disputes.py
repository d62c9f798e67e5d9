"""Disputes on the ledger's payments: Stripe's charge.dispute.* and PayPal's CUSTOMER.DISPUTE.*
and reversals keep a dispute state (open, won, lost) that holds every refund back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ledger.models import Dispute
from sandbox import samples
from tests.support.delivery import deliver, run_worker
from tests.support.paypal import dispute_event, shared_signer

SCENARIO = samples.Scenario(key="pp-dispute", amount=12000, payment_method="paypal")


def _sale(client: Any, container: Any) -> str:
    event = samples.paypal_event("PAYMENT.SALE.COMPLETED", SCENARIO)
    deliver(client, "paypal", event, shared_signer())
    run_worker(container)
    return str(event["resource"]["id"])


def _states(container: Any) -> list[tuple[str, str | None, str]]:
    with container.sessions() as session:
        return [(d.state, d.payment_ref, d.status) for d in
                session.scalars(select(Dispute).order_by(Dispute.id))]


def test_a_paypal_dispute_is_open_until_resolved_and_then_won_or_lost(client, container):
    """CREATED is open on the sale it names; RESOLVED in the seller's favour is won."""
    sale = _sale(client, container)
    deliver(client, "paypal", dispute_event(sale, "WAITING_FOR_SELLER_RESPONSE"),
            shared_signer())
    run_worker(container)
    assert _states(container) == [("open", sale, "WAITING_FOR_SELLER_RESPONSE")]
    deliver(client, "paypal", dispute_event(sale, "RESOLVED", "RESOLVED_SELLER_FAVOUR",
                                              at="2026-02-20T10:00:00Z"), shared_signer())
    run_worker(container)
    assert _states(container) == [("won", sale, "RESOLVED")]


def test_a_resolution_delivered_first_is_not_reopened_by_the_older_event(client, container):
    """Out of order: RESOLVED (buyer's favour) then CREATED leaves the dispute lost."""
    sale = _sale(client, container)
    deliver(client, "paypal", dispute_event(sale, "RESOLVED", "RESOLVED_BUYER_FAVOUR",
                                              at="2026-02-20T10:00:00Z"), shared_signer())
    deliver(client, "paypal", dispute_event(sale, "OPEN"), shared_signer())
    run_worker(container)
    assert _states(container) == [("lost", sale, "RESOLVED")]


def test_a_paypal_reversal_is_a_dispute_lost(client, container):
    """PAYMENT.SALE.REVERSED: the funds went back through a chargeback."""
    sale = _sale(client, container)
    deliver(client, "paypal", samples.paypal_event("PAYMENT.SALE.REVERSED", SCENARIO),
            shared_signer())
    run_worker(container)
    assert [(state, ref) for state, ref, _ in _states(container)] == [("lost", sale)]
