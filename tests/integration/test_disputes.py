"""Disputes on the ledger's payments: Stripe's charge.dispute.* and PayPal's CUSTOMER.DISPUTE.*
and reversals keep a dispute state (open, won, lost) that holds every refund back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ledger.models import Dispute
from service import samples
from tests.support.delivery import deliver, run_worker
from tests.support.paypal import shared_signer

SCENARIO = samples.Scenario(key="pp-dispute", amount=12000, payment_method="paypal")


def _paypal_dispute(sale_id: str, status: str, outcome: str | None = None,
                    at: str = "2026-02-10T10:00:00Z") -> dict[str, Any]:
    """A CUSTOMER.DISPUTE.* event as PayPal's Disputes API v1 sends it."""
    resource: dict[str, Any] = {
        "dispute_id": "PP-D-4242", "create_time": "2026-02-09T10:00:00Z", "update_time": at,
        "disputed_transactions": [{"seller_transaction_id": sale_id,
                                   "buyer_transaction_id": "BUYER-TXN-1"}],
        "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED", "status": status,
        "dispute_amount": {"currency_code": "USD", "value": "120.00"},
        "dispute_life_cycle_stage": "CHARGEBACK", "dispute_channel": "EXTERNAL",
    }
    if outcome:
        resource["dispute_outcome"] = {"outcome_code": outcome}
    kind = "RESOLVED" if status == "RESOLVED" else "CREATED"
    return {"id": f"WH-DISPUTE-{status}-{outcome}", "event_version": "1.0",
            "create_time": at, "resource_type": "dispute",
            "event_type": f"CUSTOMER.DISPUTE.{kind}", "summary": "A dispute was updated",
            "resource": resource, "links": []}


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
    deliver(client, "paypal", _paypal_dispute(sale, "WAITING_FOR_SELLER_RESPONSE"),
            shared_signer())
    run_worker(container)
    assert _states(container) == [("open", sale, "WAITING_FOR_SELLER_RESPONSE")]
    deliver(client, "paypal", _paypal_dispute(sale, "RESOLVED", "RESOLVED_SELLER_FAVOUR",
                                              at="2026-02-20T10:00:00Z"), shared_signer())
    run_worker(container)
    assert _states(container) == [("won", sale, "RESOLVED")]


def test_a_resolution_delivered_first_is_not_reopened_by_the_older_event(client, container):
    """Out of order: RESOLVED (buyer's favour) then CREATED leaves the dispute lost."""
    sale = _sale(client, container)
    deliver(client, "paypal", _paypal_dispute(sale, "RESOLVED", "RESOLVED_BUYER_FAVOUR",
                                              at="2026-02-20T10:00:00Z"), shared_signer())
    deliver(client, "paypal", _paypal_dispute(sale, "OPEN"), shared_signer())
    run_worker(container)
    assert _states(container) == [("lost", sale, "RESOLVED")]


def test_a_paypal_reversal_is_a_dispute_lost(client, container):
    """PAYMENT.SALE.REVERSED: the funds went back through a chargeback."""
    sale = _sale(client, container)
    deliver(client, "paypal", samples.paypal_event("PAYMENT.SALE.REVERSED", SCENARIO),
            shared_signer())
    run_worker(container)
    assert [(state, ref) for state, ref, _ in _states(container)] == [("lost", sale)]
