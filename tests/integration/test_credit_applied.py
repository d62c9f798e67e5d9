"""Account credit applied to the next PayPal payment: oldest credit first, once, and given back
when the refund that carries it fails (003 §1.8: credit only ever reduces a later payment)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import responses
from sqlalchemy import select

from adapters import ledger_credit
from ledger.models import AccountCredit, Action, ActionStatus, Decision, DecisionStatus
from sandbox import samples
from service.bootstrap import Container
from tests.support.delivery import run_worker
from tests.support.paypal import deliver, sale_at

DAY = 86400
API = "https://api-m.sandbox.paypal.com"
MERCHANT = "theopenhost"


def _credited(client: Any, container: Container, key: str, days_ago: int = 49
              ) -> samples.Scenario:
    """A 20.00 PayPal subscription that began ``days_ago`` days ago, its first period paid
    twice: over 45 days old, the repeat became 19.00 of credit (003 §1.7c, less 5%)."""
    scenario = samples.Scenario(key=key, amount=2000, payment_method="paypal",
                                period_start=int(time.time()) - days_ago * DAY)
    first = datetime.fromtimestamp(scenario.period(1)[0], UTC)
    for event in (samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", scenario),
                  sale_at(scenario, 1, first), sale_at(scenario, 1, first + timedelta(days=1),
                                                   f"TWICE-{key}")):
        deliver(client, event)
        run_worker(container)
    return scenario


def _credited_before_approval(client: Any, container: Container, key: str) -> samples.Scenario:
    """As ``_credited``, but the repeat is decided while PayPal has told only of the
    subscription's creation (before the buyer approved it, with no subscriber): the credit is
    granted under the subscription's id. Then it is activated, naming the payer."""
    scenario = samples.Scenario(key=key, amount=2000, payment_method="paypal",
                                period_start=int(time.time()) - 49 * DAY)
    created = samples.paypal_event("BILLING.SUBSCRIPTION.CREATED", scenario)
    del created["resource"]["subscriber"]
    first = datetime.fromtimestamp(scenario.period(1)[0], UTC)
    for event in (created, sale_at(scenario, 1, first),
                  sale_at(scenario, 1, first + timedelta(days=1), f"TWICE-{key}"),
                  samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", scenario)):
        deliver(client, event)
        run_worker(container)
    return scenario


def _credit_then_payment(client: Any, container: Container, key: str) -> tuple[str, str]:
    """A first period paid twice 48 days ago (19.00 of credit), then a payment made now."""
    scenario = _credited(client, container, key)
    later = sale_at(scenario, 3, datetime.now(UTC) + timedelta(seconds=2))
    deliver(client, later)
    return scenario.paypal_payer_id, later["resource"]["id"]


def _failed_application(client: Any, container: Container, key: str) -> tuple[str, str, str]:
    """The credit applied to the next payment, and PayPal refusing that refund: (payer, sale,
    the credit application's decision id)."""
    payer, sale = _credit_then_payment(client, container, key)
    responses.post(f"{API}/v1/payments/sale/{sale}/refund", status=422, json={
        "name": "TRANSACTION_REFUSED", "message": "The request was refused"})
    run_worker(container)
    with container.sessions() as s:
        decision = s.scalars(select(Decision).where(
            Decision.request_kind == "credit_application")).one()
    return payer, sale, decision.id


def _token() -> None:
    responses.post(f"{API}/v1/oauth2/token",
                   json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})


@responses.activate
def test_a_refused_refund_gives_the_credit_back_for_the_next_payment(client, container):
    _token()
    payer, sale, decision_id = _failed_application(client, container, "credit-refused")
    with container.sessions() as s:
        decision = s.get(Decision, decision_id)
        assert decision is not None
        action = s.scalars(select(Action).where(Action.decision_id == decision.id)).one()
        (grant,) = ledger_credit.open_grants(s, MERCHANT, payer, "USD", ledger_credit.LEDGER)
        balance = ledger_credit.balance(s, MERCHANT, payer, "USD").amount
        uses = s.scalars(select(AccountCredit).where(AccountCredit.amount < 0)).all()
    assert action.status == ActionStatus.FAILED
    assert decision.status == DecisionStatus.CLOSED  # nothing to review: the credit is back
    assert [(u.amount, u.applied_to, u.action_id) for u in uses] == [(-1900, sale, action.id)]
    assert (grant.left, balance) == (1900, 1900)  # the use no longer counts: credit is back


@responses.activate
def test_credit_applies_only_to_payments_made_after_it_was_granted(client, container):
    """The second period's payment, made before the credit existed, takes none of it."""
    _token()
    scenario = _credited(client, container, "credit-before")
    deliver(client, sale_at(scenario, 2, datetime.fromtimestamp(scenario.period(2)[0], UTC)))
    run_worker(container)
    with container.sessions() as s:
        assert s.scalars(select(Decision.request_kind)).all() == ["overpayment"]
        assert ledger_credit.balance(s, MERCHANT, scenario.paypal_payer_id, "USD").amount == 1900


def test_credit_is_drawn_oldest_first() -> None:
    old, new = AccountCredit(id=1, amount=500), AccountCredit(id=2, amount=900)
    grants = [ledger_credit.OpenGrant(old, 300), ledger_credit.OpenGrant(new, 900)]
    assert [(g.id, n) for g, n in ledger_credit.plan_uses(grants, 700)] == [(1, 300), (2, 400)]
    assert [(g.id, n) for g, n in ledger_credit.plan_uses(grants, 200)] == [(1, 200)]
    assert ledger_credit.plan_uses(grants, 0) == []


def _stripe_grant(container: Container, customer: str, amount: int) -> int:
    """A credit held on the Stripe customer balance, as a granted credit action leaves it."""
    with container.sessions() as s, s.begin():
        grant = AccountCredit(merchant=MERCHANT, account_ref=customer, amount=amount,
                              currency="USD", reason="service credit", clause="003 §1.12a",
                              created_at=datetime.now(UTC) - timedelta(hours=1),
                              held_by=ledger_credit.STRIPE_BALANCE)
        s.add(grant)
        s.flush()
        return grant.id


def test_a_voided_stripe_invoice_gives_its_credit_back_for_the_next_one(client, container):
    """Stripe returns the balance a voided invoice had applied (API 2019-12-03 on): the use is
    given back to its grant, and the next invoice uses the credit again; the API and the report
    count it once."""
    from tests.support import stripe as sig

    scenario = samples.Scenario(key="voided", amount=2000, period_start=int(time.time()) - DAY)
    customer = scenario.customer_id
    grant = _stripe_grant(container, customer, 500)
    first = samples.stripe_event("invoice.finalized", scenario, cycle=1,
                                 starting_balance=-500, ending_balance=0)
    voided = samples.stripe_event("invoice.voided", scenario, cycle=1, starting_balance=-500,
                                  ending_balance=0)
    second = samples.stripe_event("invoice.paid", scenario, cycle=2, starting_balance=-500,
                                  ending_balance=0)
    for event in (first, voided, voided, second):
        sig.post(client, event)
        run_worker(container)
    invoices = (first["data"]["object"]["id"], second["data"]["object"]["id"])
    shown = client.get(f"/v1/accounts/{customer}/credit", headers={
        "Authorization": "Bearer test-admin-theopenhost-003"}).json
    assert [(e["kind"], e["amount"]["amount"], e["applies_to"], e["applied_to"])
            for e in shown["entries"]] == [
        ("grant", 500, None, None), ("use", -500, grant, invoices[0]),
        ("return", 500, grant, f"{invoices[0]}:voided"), ("use", -500, grant, invoices[1])]
    assert shown["balances"] == [{"currency": "USD", "available": 0, "granted": 500,
                                  "used": 500}]


@responses.activate
def test_credit_granted_before_the_payer_was_known_is_used_by_the_next_payment(client,
                                                                                container):
    """The credit is filed under the subscription's id (its payer was not known yet); the next
    payment, made once the payer is known, still takes it."""
    _token()
    scenario = _credited_before_approval(client, container, "credit-unapproved")
    with container.sessions() as s:
        (grant,) = s.scalars(select(AccountCredit).where(AccountCredit.amount > 0)).all()
    assert grant.account_ref == scenario.paypal_subscription_id != scenario.paypal_payer_id
    later = sale_at(scenario, 3, datetime.now(UTC) + timedelta(seconds=2))
    responses.post(f"{API}/v1/payments/sale/{later['resource']['id']}/refund", json={
        "id": "RF-CREDIT", "state": "completed",
        "amount": {"total": "19.00", "currency": "USD"}})
    deliver(client, later)
    run_worker(container)
    with container.sessions() as s:
        decision = s.scalars(select(Decision).where(
            Decision.request_kind == "credit_application")).one()
        uses = s.scalars(select(AccountCredit).where(AccountCredit.amount < 0)).all()
        left = ledger_credit.balance(s, MERCHANT, scenario.paypal_subscription_id, "USD").amount
    assert decision.account_ref == scenario.paypal_payer_id
    assert [(u.amount, u.applied_to, u.applies_to) for u in uses] == [
        (-1900, later["resource"]["id"], grant.id)]
    assert left == 0
