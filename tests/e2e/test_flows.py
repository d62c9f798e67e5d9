"""Every support flow through the real processes: gunicorn, a worker and the clock, on real
Redis and the test database, with Stripe and PayPal answered by the local fake at HTTP level."""

from __future__ import annotations

import time
from datetime import UTC
from typing import Any

import requests
from sqlalchemy import select

from ledger.models import AccountCredit, Action, AuditEntry, Decision, Refund, SupportRequest
from sandbox.demo_flows import FLOWS, ended_in, run_flows
from tests.support.providers import assert_money_invariant, ledger_refunds


def test_every_merchant_gets_a_refund_a_credit_a_denial_and_a_review(gateway, container):
    """Each seed merchant's four flows end as the policy says, and the money moved once."""
    base, settings, fake = gateway
    results = run_flows(base, settings, on_send=fake.observe)
    assert [(r.flow.merchant, r.flow.label, ended_in(r), r.outcome) for r in results] == [
        (f.merchant, f.label, f.label, f.expect) for f in FLOWS]

    with container.sessions() as s:
        refunds = s.scalars(select(Action).where(Action.kind == "refund")).all()
        credits = s.scalars(select(AccountCredit)).all()
        # every refund reached the provider once, under its action id, and is in the ledger
        refunded: dict[str, int] = {}
        for action in refunds:
            assert fake.posts_with_key(action.id) == 1
            assert action.provider_ref == fake.refunds[action.id]["id"]
            ledger = s.scalars(select(Refund).where(Refund.action_id == action.id)).one()
            assert ledger.amount == action.amount
            refunded[str(ledger.payment_ref)] = refunded.get(str(ledger.payment_ref), 0) + (
                ledger.amount)
        assert len(refunds) == 4 and len(credits) == 4
        assert {c.clause for c in credits} == {"review"}
        # every decision traces back to the request that caused it, and the request to its filer
        for decision in s.scalars(select(Decision)):
            request = s.get(SupportRequest, decision.source_request_id)
            assert request is not None and request.decision_id == decision.id
        audited = {(e.action, e.subject) for e in s.scalars(select(AuditEntry))}
        for result in results:
            assert ("request.filed", result.request_id) in audited
            assert ("request.decided", result.request_id) in audited
    assert refunded == ledger_refunds(container)
    assert_money_invariant(container, fake)


def test_a_cancellation_and_an_uptime_claim_through_the_running_gateway(gateway, container):
    """Filed over HTTP, decided by the worker: Stripe is told when to stop, credit is granted."""
    from datetime import datetime, timedelta

    from sandbox import samples
    from sandbox.simulator import send_stripe

    base, settings, fake = gateway
    merchant = settings.merchants["theopenhost"]
    headers = {"Authorization": f"Bearer {merchant.admin_token}"}
    scenario = samples.Scenario(key=f"e2e-{time.time_ns()}", amount=1000,
                                period_start=int(time.time()) - 3 * 86400)
    number = None
    for event_type in ("customer.subscription.created", "invoice.paid", "charge.succeeded"):
        event = samples.stripe_event(event_type, scenario)
        number = event["data"]["object"].get("number") or number
        fake.observe(event)
        assert send_stripe(f"{base}/webhooks/theopenhost/stripe", event,
                           merchant.stripe.webhook_secrets[0]).status == 200
    identity = {"username": "alice", "main_domain": "alice.example", "invoice_number": number,
                "date_of_birth": "1980-02-03", "order_number": "O-1", "verified": True}
    incident = (datetime.now(UTC) - timedelta(hours=5)).isoformat()
    filed: dict[str, dict[str, Any]] = {}
    claims: tuple[tuple[str, dict[str, Any]], ...] = (
        ("cancellations", {"subscription": scenario.subscription_id}),
        ("uptime-claims", {"subscription": scenario.subscription_id,
                           "uptime": {"measured_percent": "99.2", "incident_at": incident}}))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(filed) < 2:  # the ledger fills asynchronously
        time.sleep(0.5)
        for kind, body in claims:
            if kind in filed:
                continue
            resp = requests.post(f"{base}/v1/{kind}", headers=headers, timeout=5, json={
                "account": scenario.customer_id, "identity": identity, **body})
            assert resp.status_code == 202
            shown = _until_done(base, headers, kind, resp.json()["id"])
            if shown["status"] == "decided":
                filed[kind] = shown
    cancel = filed["cancellations"]["decision"]
    assert cancel["decision"]["outcome"] == "cancel_at_period_end"
    assert [a["status"] for a in cancel["actions"]] == ["succeeded"]
    assert any(r.path.startswith(f"/v1/subscriptions/{scenario.subscription_id}")
               and "cancel_at=" in r.body for r in fake.requests)
    uptime = filed["uptime-claims"]["decision"]
    assert uptime["decision"]["outcome"] == "service_credit"
    assert uptime["decision"]["amounts"]["credit"] == {"amount": 800, "currency": "USD"}
    with container.sessions() as s:
        assert s.scalars(select(AccountCredit).where(
            AccountCredit.account_ref == scenario.customer_id)).one().amount == 800
    assert_money_invariant(container, fake)


def _until_done(base: str, headers: dict[str, str], kind: str, request_id: str
                ) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = requests.get(f"{base}/v1/{kind}/{request_id}", headers=headers, timeout=5).json()
        decision = shown.get("decision")
        if shown["status"] == "failed" or (decision and all(
                a["status"] in ("succeeded", "submitted", "failed")
                for a in decision["actions"])):
            return dict(shown)
        time.sleep(0.2)
    raise AssertionError(f"{kind} {request_id} not done")


def test_a_payment_after_a_paypal_cancellation_is_refunded_by_the_running_gateway(gateway,
                                                                                  container):
    """Webhooks alone: the cancellation at PayPal is decided (003 §1.2a: ending the billing
    agreement does not cancel the hosting account, so no confirmation is sent), and the sale
    that followed it is refunded less the 5% fee, once, under its action id."""
    from ledger.models import Decision
    from ledger.schedule_models import Notice
    from sandbox import samples
    from tests.support.paypal import paid_after_it_ended, post_signed

    base, settings, fake = gateway
    scenario = samples.Scenario(key=f"e2e-pp-{time.time_ns()}", amount=2000,
                                payment_method="paypal",
                                period_start=int(time.time()) - 40 * 86400)
    cancelled, sale = paid_after_it_ended(scenario)
    webhook_id = settings.merchants["theopenhost"].paypal.webhook_id
    for event in (cancelled, sale):
        fake.observe(event)
        assert post_signed(base, "theopenhost", webhook_id, event) == 200
        time.sleep(1.0)  # in order: PayPal sends the cancellation before the next sale
    deadline = time.monotonic() + 30
    refund = None
    while time.monotonic() < deadline and refund is None:
        with container.sessions() as s:
            refund = s.scalars(select(Action).where(Action.kind == "refund",
                                                    Action.status == "succeeded")).first()
        time.sleep(0.3)
    assert refund is not None, "the overpayment was not refunded"
    assert (refund.amount, refund.payment_ref) == (1900, sale["resource"]["id"])
    assert fake.posts_with_key(refund.id) == 1
    assert ledger_refunds(container) == {sale["resource"]["id"]: 1900}
    assert_money_invariant(container, fake)
    with container.sessions() as s:
        ds = list(s.scalars(select(Decision)))
        kinds = sorted(d.request_kind for d in ds)
        notices = [n.kind for n in s.scalars(select(Notice))]
    assert kinds == ["cancellation", "overpayment"]
    (cancellation,) = [d for d in ds if d.request_kind == "cancellation"]
    assert cancellation.outcome == "cancel_blocked"
    assert "003 §1.2a" in [r["clause"] for r in cancellation.decision["reasons"] if not r["holds"]]
    assert "cancellation_confirmation" not in notices


def test_the_running_clock_marks_an_unpaid_invoice_overdue_and_sends_notices(gateway,
                                                                             container):
    """The clock process: an invoice unpaid two days past due is overdue, support is withheld
    (003 §1.4, §1.6); a renewal 5 days out gets its reminder (002), delivered by the notifier."""
    from ledger.schedule_models import Account, InvoiceAssessment, Notice
    from sandbox import samples
    from sandbox.simulator import send_stripe

    base, settings, fake = gateway
    now = int(time.time())
    host = samples.Scenario(key=f"e2e-due-{time.time_ns()}", amount=1000,
                            period_start=now - 40 * 86400)
    unpaid = samples.stripe_event("invoice.payment_failed", host, cycle=2,
                                  due_date=now - 2 * 86400)
    fake.observe(unpaid)
    assert send_stripe(f"{base}/webhooks/theopenhost/stripe", unpaid,
                       settings.merchants["theopenhost"].stripe.webhook_secrets[0]).status == 200
    vpn = samples.Scenario(key=f"e2e-renew-{time.time_ns()}", amount=1000,
                           period_start=now - 26 * 86400)  # renews in about 4-5 days
    renewing = samples.stripe_event("customer.subscription.created", vpn)
    fake.observe(renewing)
    assert send_stripe(f"{base}/webhooks/cloudbehind/stripe", renewing,
                       settings.merchants["cloudbehind"].stripe.webhook_secrets[0]).status == 200
    deadline = time.monotonic() + 40
    assessment = reminder = None
    while time.monotonic() < deadline and not (assessment and reminder and reminder.sent_at):
        time.sleep(0.5)
        with container.sessions() as s:
            assessment = s.scalars(select(InvoiceAssessment)).first()
            reminder = s.scalars(select(Notice).where(Notice.merchant == "cloudbehind")).first()
            account = s.scalars(select(Account).where(
                Account.account_ref == host.customer_id)).first()
    assert assessment is not None and assessment.overdue
    assert account is not None and account.support_withheld
    assert reminder is not None and reminder.kind == "auto_renewal_reminder"
    assert reminder.sent_at is not None and reminder.channel == "log"
    assert_money_invariant(container, fake)
