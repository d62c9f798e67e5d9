"""A Stripe charge for more than its invoice owed (003 §1.7b, §1.7c): decided once, by whichever
of the pair's events finds the other, whatever else the ledger learnt of them first; and only
for a charge that succeeded."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import Decision, InboxEvent, Payment
from sandbox import samples
from service.bootstrap import Container
from tests.support import stripe as sig
from tests.support.delivery import run_worker
from tests.support.ledger import add_in_order

DAY = 86400


def _deliver(client: FlaskClient, container: Container, *events: dict[str, Any]) -> None:
    for event in events:
        assert sig.post(client, event).status_code == 200
        run_worker(container)


def _overpayments(container: Container) -> list[tuple[str | None, int]]:
    with container.sessions() as s:
        return [(d.payment_ref, d.case["payment"]["overpaid_amount"]["amount"])
                for d in s.scalars(select(Decision).where(Decision.request_kind == "overpayment"))]


def _scenario(key: str) -> samples.Scenario:
    return samples.Scenario(key=key, amount=2500, period_start=int(time.time() - 2 * DAY))


def test_an_overpayment_decided_when_the_charge_came_is_not_decided_again_by_the_invoice(
        client, container):
    """The invoice reached the ledger before its charge (``invoice.finalized``): the charge's
    event finds it and decides the 5.00 overpaid (for review: 003 §1.7 speaks of PayPal). The
    invoice's ``invoice.paid`` then finds both again and decides nothing more: one decision
    about the 5.00, which a reviewer cannot approve twice."""
    scenario = _scenario("overpaid-finalized-first")
    _deliver(client, container,
             samples.stripe_event("invoice.finalized", scenario, amount_due=2000),
             samples.stripe_event("charge.succeeded", scenario))
    assert _overpayments(container) == [(scenario.charge_id, 500)]
    _deliver(client, container, samples.stripe_event("invoice.paid", scenario, amount_due=2000))
    assert _overpayments(container) == [(scenario.charge_id, 500)]


def test_the_same_charge_id_at_another_merchant_does_not_count_as_decided(client, container):
    """Overpayments decided are looked up by merchant: another merchant's decision about a
    charge with the same id is not this one's."""
    scenario = _scenario("overpaid-twin")
    with container.sessions() as s, s.begin():
        s.add(Decision(id="dec_other_merchant", merchant="oneclick", pack="oneclick",
                       request_kind="overpayment", payment_ref=scenario.charge_id,
                       outcome="account_credit", status="executed", decision={}, case={},
                       evaluated_at=datetime.now(UTC)))
    _deliver(client, container,
             samples.stripe_event("charge.succeeded", scenario),
             samples.stripe_event("invoice.paid", scenario, amount_due=2000))
    with container.sessions() as s:
        ours = s.scalars(select(Decision.payment_ref).where(
            Decision.merchant == "theopenhost", Decision.request_kind == "overpayment")).all()
    assert list(ours) == [scenario.charge_id]


def test_an_invoice_naming_its_charge_finds_it_though_the_charge_names_no_invoice(
        client, container):
    """Newer Stripe charges carry no ``invoice``: the charge's own event cannot find its
    invoice, and the invoice's event, which names the charge, decides the overpayment."""
    scenario = _scenario("overpaid-charge-without-invoice")
    charge = samples.stripe_event("charge.succeeded", scenario)
    charge["data"]["object"].pop("invoice", None)
    _deliver(client, container, charge,
             samples.stripe_event("invoice.paid", scenario, amount_due=2000))
    assert _overpayments(container) == [(scenario.charge_id, 500)]


def test_a_charge_the_ledger_holds_as_not_succeeded_overpays_nothing(client, container):
    """An invoice naming a charge that did not succeed (failed, or still pending, as a bank
    debit is for days) is not overpaid by it: no money came in to give back."""
    for status in ("failed", "pending"):
        scenario = _scenario(f"overpaid-{status}")
        paid = datetime.now(UTC) - timedelta(days=2)
        add_in_order(container, Payment(
            merchant="theopenhost", provider="stripe", provider_id=scenario.charge_id,
            version_at=paid, version_event=f"evt_{status}", kind="charge", status=status,
            amount=2500, amount_refunded=0, currency="USD", invoice_ref=scenario.invoice_id,
            customer_ref=scenario.customer_id, paid_at=paid))
        _deliver(client, container,
                 samples.stripe_event("invoice.paid", scenario, amount_due=2000))
    assert _overpayments(container) == []


def _decision(container: Container) -> tuple[str | None, bool, str]:
    """The one overpayment decision's account, whether its Case says the payment was for a
    subscription, and the type of the event that decided it."""
    with container.sessions() as s:
        (decision,) = s.scalars(select(Decision).where(Decision.request_kind == "overpayment"))
        source = s.get(InboxEvent, decision.source_event_id)
        assert source is not None
        return decision.account_ref, decision.case["payment"]["via_subscription"], source.event_type


def test_an_overpayment_of_a_charge_naming_no_customer_is_the_invoices_customers(
        client, container):
    """The account an overpayment is credited to, or reviewed under: the charge's customer;
    else the invoice's; else, with no customer named anywhere, the invoice itself. The decision
    records the event that decided it, and whether the invoice was a subscription's."""
    by_invoice = _scenario("overpaid-customer-on-invoice")
    _deliver(client, container, samples.stripe_event("charge.succeeded", by_invoice, customer=None),
             samples.stripe_event("invoice.paid", by_invoice, amount_due=2000))
    assert _decision(container) == (by_invoice.customer_id, True, "invoice.paid")


def test_an_overpayment_of_a_one_off_invoice_is_the_charges_customers(client, container):
    scenario = _scenario("overpaid-one-off")
    _deliver(client, container,
             samples.stripe_event("invoice.paid", scenario, amount_due=2000, customer=None,
                                  subscription=None, parent=None),
             samples.stripe_event("charge.succeeded", scenario))
    assert _decision(container) == (scenario.customer_id, False, "charge.succeeded")


def test_an_overpayment_naming_no_customer_is_the_invoices(client, container):
    scenario = _scenario("overpaid-no-customer")
    _deliver(client, container,
             samples.stripe_event("invoice.paid", scenario, amount_due=2000, customer=None),
             samples.stripe_event("charge.succeeded", scenario, customer=None))
    assert _decision(container) == (scenario.invoice_id, True, "charge.succeeded")
