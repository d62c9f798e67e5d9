"""A refund that carried account credit and failed gives the credit back, and only that: its
decision is closed saying so, not put in front of a reviewer whose approval would pay the same
credit a second time (as a refund, while the credit stays on the account)."""

from __future__ import annotations

import time

import responses
from sqlalchemy import select

from adapters import ledger_credit
from ledger.models import Action, Decision, DecisionStatus
from sandbox import samples
from tests.integration.test_credit_applied import (
    DAY,
    MERCHANT,
    _failed_application,
    _token,
)
from tests.support.delivery import run_worker
from tests.support.paypal import deliver

HOST = {"Authorization": "Bearer test-admin-theopenhost-003"}


@responses.activate
def test_a_failed_credit_refund_closes_its_decision_with_the_credit_back(client, container):
    _token()
    payer, _, decision_id = _failed_application(client, container, "credit-failed-closed")
    with container.sessions() as s:
        decision = s.get(Decision, decision_id)
        assert decision is not None
        balance = ledger_credit.balance(s, MERCHANT, payer, "USD").amount
    # Asked outside the session above: on SQLite it holds the write lock, and the request would
    # wait it out and answer 503, which holds no decision id either.
    pending = client.get("/v1/reviews", headers=HOST)
    assert balance == 1900
    assert decision.status == DecisionStatus.CLOSED
    assert "credit is back on the account" in (decision.status_reason or "")
    assert pending.status_code == 200
    assert decision_id not in str(pending.get_json())


@responses.activate
def test_a_failed_credit_refund_cannot_be_paid_again_in_review(client, container):
    """An approval would refund the 19.00 while the 19.00 of credit stays usable: refused."""
    _token()
    payer, sale, decision_id = _failed_application(client, container, "credit-failed-review")
    resp = client.post(f"/v1/reviews/{decision_id}", headers=HOST, json={
        "approve": True, "reviewer": "kim@finance", "refund": {"amount": 1900, "currency": "USD"}})
    assert resp.status_code == 409
    with container.sessions() as s:
        refunds = s.scalars(select(Action).where(Action.payment_ref == sale)).all()
        balance = ledger_credit.balance(s, MERCHANT, payer, "USD").amount
    assert len(refunds) == 1 and balance == 1900


@responses.activate
def test_a_refund_that_landed_after_its_action_failed_keeps_the_credit_used(client, container):
    """The provider reports the refund completed after all (an attempt that timed out had
    reached it): the credit left as that refund, so it is not back on the account as well."""
    _token()
    payer, sale, decision_id = _failed_application(client, container, "credit-landed-late")
    with container.sessions() as s:
        action = s.scalars(select(Action).where(Action.decision_id == decision_id)).one()
    scenario = samples.Scenario(key="credit-landed-late", amount=2000, payment_method="paypal",
                                period_start=int(time.time()) - 49 * DAY)
    refunded = samples.paypal_event("PAYMENT.SALE.REFUNDED", scenario, cycle=3,
                                    sale_id=sale, invoice_number=action.id,
                                    amount={"total": "19.00", "currency": "USD"})
    deliver(client, refunded)
    run_worker(container)
    with container.sessions() as s:
        balance = ledger_credit.balance(s, MERCHANT, payer, "USD").amount
        grants = ledger_credit.open_grants(s, MERCHANT, payer, "USD", ledger_credit.LEDGER)
    assert (balance, grants) == (0, [])
