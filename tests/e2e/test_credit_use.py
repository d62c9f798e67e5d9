"""Account credit that gets used, through the real processes (gunicorn, a queue worker, the
clock) and the strict fake providers: an overpayment becomes credit, the account's next invoice
consumes it, and the reconciliation report shows it granted and used (003 §1.7c, §1.8, §1.12).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import requests
from sqlalchemy import select

from adapters import ledger_credit
from ledger.models import AccountCredit, Action, ActionStatus, Decision
from sandbox import samples
from sandbox.simulator import send_stripe
from service.bootstrap import Container
from tests.e2e.conftest import process_env
from tests.support.paypal import post_signed
from tests.support.waiting import until

MERCHANT = "theopenhost"
DAY = 86400
ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _entries(container: Container, account: str) -> list[AccountCredit]:
    with container.sessions() as s:
        return list(s.scalars(select(AccountCredit).where(
            AccountCredit.account_ref == account).order_by(AccountCredit.id)))


def _balance(container: Container, account: str) -> int:
    with container.sessions() as s:
        return ledger_credit.balance(s, MERCHANT, account, "USD").amount


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def _paypal(base: str, settings: Any, fake: Any, event: dict[str, Any]) -> None:
    fake.observe(event)
    assert post_signed(base, MERCHANT, settings.merchants[MERCHANT].paypal.webhook_id,
                       event) == 200


def _paid_again(scenario: samples.Scenario, at: str) -> dict[str, Any]:
    """A second sale for the scenario's first period, at ``at``."""
    event = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=1, create_time=at,
                                 event_id=f"WH-TWICE-{scenario.key}", id=f"TWICE-{scenario.key}",
                                 update_time=at)
    event["resource"]["create_time"] = at
    return event


def test_paypal_overpayment_credit_is_used_by_the_next_payment(gateway, container):
    """The first period paid twice 48 days ago: too old to refund (§1.7b), so 19.00 of credit
    (less the 5% fee, §1.7c-d). The next payment, made after, takes it: PayPal refunds 19.00 of
    that 20.00 payment, and the use names the credit and the payment."""
    base, settings, fake = gateway
    scenario = samples.Scenario(key=f"credit-pp-{time.time_ns()}", amount=2000,
                                payment_method="paypal",
                                period_start=int(time.time()) - 49 * DAY)
    payer = scenario.paypal_payer_id
    twice = _iso(datetime.fromtimestamp(scenario.period(1)[0] + DAY, UTC))
    for event in (samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", scenario),
                  samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=1),
                  _paid_again(scenario, twice)):
        _paypal(base, settings, fake, event)
    grant = until(lambda: [e for e in _entries(container, payer) if e.amount > 0],
                   "the overpayment's credit")[0]
    assert (grant.amount, grant.held_by) == (1900, "ledger")

    now = _iso(datetime.now(UTC) + timedelta(seconds=2))  # after the grant, to the second
    later = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=3,
                                 create_time=now, update_time=now)
    later["resource"]["create_time"] = now  # paid now, after the credit was granted
    _paypal(base, settings, fake, later)
    sale = later["resource"]["id"]
    use = until(lambda: [e for e in _entries(container, payer) if e.amount < 0],
                 "the credit used")[0]
    assert (use.amount, use.applies_to, use.applied_to) == (-1900, grant.id, sale)
    with container.sessions() as s:
        action = s.get(Action, use.action_id)
        decision = s.get(Decision, action.decision_id)
    until(lambda: _status(container, action.id) == ActionStatus.SUCCEEDED, "the refund")
    assert decision.request_kind == "credit_application"
    assert decision.decision["reasons"][0]["clause"] == "gateway: account credit"
    assert fake.books()[sale] == (2000, 1900, "USD")  # the payment less the credit
    assert _balance(container, payer) == 0
    report = _report(settings, container)
    assert (report["credit_granted"], report["credit_used"]) == (1900, 1900)


def test_stripe_credit_is_held_on_the_customer_balance_and_used_by_the_next_invoice(
        gateway, container):
    """A Stripe charge of 25.00 for an invoice that owed 20.00: 5.00 overpaid, which 003 leaves
    to a person (its clauses name PayPal); the reviewer grants it as account credit, which for a
    Stripe customer is a negative customer balance at Stripe. The next invoice Stripe finalises
    takes it (starting balance -5.00, ending 0.00), and the ledger records that use."""
    base, settings, fake = gateway
    scenario = samples.Scenario(key=f"credit-st-{time.time_ns()}", amount=2500,
                                period_start=int(time.time()) - 10 * DAY)
    secret = settings.merchants[MERCHANT].stripe.webhook_secrets[0]
    url = f"{base}/webhooks/{MERCHANT}/stripe"
    auth = {"Authorization": f"Bearer {settings.merchants[MERCHANT].admin_token}"}
    for event in (samples.stripe_event("customer.subscription.created", scenario),
                  samples.stripe_event("invoice.paid", scenario, amount_due=2000),
                  samples.stripe_event("charge.succeeded", scenario)):
        fake.observe(event)
        assert send_stripe(url, event, secret).status == 200
    customer = scenario.customer_id

    def in_review() -> list[dict[str, Any]]:
        listed = requests.get(f"{base}/v1/reviews", headers=auth, timeout=10).json()
        return [r for r in listed["reviews"]
                if r["case"].get("payment", {}).get("refundable") is not None
                and r["account"] == customer]

    (review,) = until(in_review, "the overpayment in review")
    assert review["decision"]["request_kind"] == "overpayment"
    approved = requests.post(f"{base}/v1/reviews/{review['id']}", headers=auth, timeout=30,
                             json={"approve": True, "reviewer": "kim@finance",
                                   "credit": {"amount": 500, "currency": "USD"}})
    assert approved.status_code == 200, approved.text
    grant = until(lambda: [e for e in _entries(container, customer) if e.amount > 0],
                   "the credit granted", timeout=90)[0]
    assert (grant.amount, grant.held_by) == (500, "stripe_balance")

    following = samples.stripe_event("invoice.paid", scenario, cycle=2, amount_due=2000,
                                     starting_balance=-500, ending_balance=0)
    assert send_stripe(url, following, secret).status == 200
    invoice = following["data"]["object"]["id"]
    use = until(lambda: [e for e in _entries(container, customer) if e.amount < 0],
                 "the credit used")[0]
    assert (use.amount, use.applies_to, use.applied_to, use.action_id) == (
        -500, grant.id, invoice, None)
    assert _balance(container, customer) == 0
    again = samples.stripe_event("invoice.finalized", scenario, cycle=2, amount_due=2000,
                                 starting_balance=-500, ending_balance=0)
    assert send_stripe(url, again, secret).status == 200  # the same invoice: recorded once
    time.sleep(2)
    assert [e.amount for e in _entries(container, customer)] == [500, -500]
    report = _report(settings, container)
    assert (report["credit_granted"], report["credit_used"]) == (500, 500)
    shown = requests.get(f"{base}/v1/accounts/{customer}/credit", timeout=10, headers={
        "Authorization": f"Bearer {settings.merchants[MERCHANT].admin_token}"}).json()
    assert shown["balances"] == [{"currency": "USD", "available": 0, "granted": 500,
                                  "used": 500}]
    assert [(e["kind"], e["held_by"], e["applied_to"]) for e in shown["entries"]] == [
        ("grant", "stripe_balance", None), ("use", "stripe_balance", invoice)]


def _status(container: Container, action_id: str) -> str:
    with container.sessions() as s:
        action = s.get(Action, action_id)
        assert action is not None
        return action.status


def _report(settings: Any, container: Container) -> dict[str, Any]:
    """``gateway report reconcile`` over the last 60 days, as finance runs it (against a provider
    export: only the ledger's totals are read here): the USD totals."""
    today = date.today()
    env = process_env(container.settings)
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "report", "reconcile", "--merchant", MERCHANT,
         "--from", (today - timedelta(days=60)).isoformat(),
         "--to", (today + timedelta(days=1)).isoformat(), "--format", "json",
         "--provider-export", str(ROOT / "tests/fixtures/exports/stripe_balance_history.csv")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode in (0, 1), out.stderr  # 1: discrepancies, as documented
    totals: dict[str, Any] = json.loads(out.stdout)["currencies"]["USD"]
    return totals
