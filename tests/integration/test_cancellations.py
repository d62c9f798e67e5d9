"""Cancellations filed by support: deadlines, blocking debts, and the provider told when to stop."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import cast
from urllib.parse import parse_qs

import pytest
import responses
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import Action, ActionStatus
from sandbox import samples
from service.bootstrap import Container
from tests.support import stripe as sig
from tests.support.delivery import run_worker
from tests.support.ledger import add_in_order, paypal_payment
from tests.support.paypal import deliver, shared_signer
from workers.actions import run_action

HOST = {"Authorization": "Bearer test-admin-theopenhost-003"}
DIGITAL = {"Authorization": "Bearer test-admin-digitalcare-001"}
DAY = 86400


def _stripe_subscription(client: FlaskClient, container: Container, key: str, days_ago: float,
                         *extra: str) -> tuple[samples.Scenario, str]:
    scenario = samples.Scenario(key=key, amount=1000,
                                period_start=int(time.time() - days_ago * DAY))
    invoice = None
    for event_type in ("customer.subscription.created", "invoice.paid", "charge.succeeded",
                       *extra):
        event = samples.stripe_event(event_type, scenario)
        if event_type == "invoice.paid":
            invoice = event["data"]["object"]["number"]
        assert sig.post(client, event).status_code == 200
    run_worker(container)
    return scenario, str(invoice)


def _identity(invoice: str) -> dict[str, object]:
    return {"main_domain": "alice.example", "invoice_number": invoice,
            "date_of_birth": "1980-02-03", "verified": True}


@responses.activate
def test_an_on_time_cancellation_ends_the_stripe_subscription_at_period_end(client, container):
    """003: at least 3 days before the next invoice: cancel_at = period end, sent once."""
    scenario, invoice = _stripe_subscription(client, container, "cancel-ok", days_ago=3)
    url = f"https://api.stripe.com/v1/subscriptions/{scenario.subscription_id}"
    responses.post(url, json={"id": scenario.subscription_id, "object": "subscription",
                              "status": "active"})
    filed = client.post("/v1/cancellations", headers=HOST, json={
        "account": scenario.customer_id, "subscription": scenario.subscription_id,
        "reason": "moving to another host", "identity": _identity(invoice)})
    assert filed.status_code == 202
    run_worker(container)
    shown = client.get(f"/v1/cancellations/{filed.json['id']}", headers=HOST).json
    decision = shown["decision"]
    assert decision["decision"]["outcome"] == "cancel_at_period_end"
    effective = datetime.fromisoformat(
        decision["decision"]["dates"]["effective_at"].replace("Z", "+00:00"))
    (call,) = responses.calls
    assert isinstance(call.request.body, str)
    assert parse_qs(call.request.body)["cancel_at"] == [str(int(effective.timestamp()))]
    (action,) = decision["actions"]
    assert call.request.headers["Idempotency-Key"] == action["id"]
    assert (action["kind"], action["status"]) == ("cancel", "succeeded")


def test_an_unpaid_invoice_blocks_the_cancellation(client, container):
    """003 §1.2c: with an invoice due, the cancellation is blocked and nothing is sent."""
    scenario, invoice = _stripe_subscription(client, container, "cancel-blocked", days_ago=40)
    renewal = samples.stripe_event("invoice.payment_failed", scenario, cycle=2)
    assert sig.post(client, renewal).status_code == 200
    run_worker(container)
    filed = client.post("/v1/cancellations", headers=HOST, json={
        "account": scenario.customer_id, "subscription": scenario.subscription_id,
        "identity": _identity(invoice)})
    run_worker(container)
    decision = client.get(f"/v1/cancellations/{filed.json['id']}", headers=HOST
                          ).json["decision"]
    assert decision["decision"]["outcome"] == "cancel_blocked"
    assert "003 §1.2c" in [r["clause"] for r in decision["decision"]["reasons"] if not r["holds"]]
    assert decision["actions"] == []


@responses.activate
def test_a_paypal_cancellation_waits_for_its_effective_date(client, container):
    """001: PayPal cancels only 'now', so the action is held until the cycle ends, then sent."""
    scenario = samples.Scenario(key="pp-cancel", amount=1000, payment_method="paypal",
                                period_start=int(time.time() - 3 * DAY))
    for event_type in ("BILLING.SUBSCRIPTION.ACTIVATED", "PAYMENT.SALE.COMPLETED"):
        raw = json.dumps(samples.paypal_event(event_type, scenario)).encode()
        resp = client.post("/webhooks/digitalcare/paypal", data=raw,
                           headers=shared_signer().headers(raw, "WH-DIGITALCARE-SANDBOX-001"),
                           content_type="application/json")
        assert resp.status_code == 200
    run_worker(container)
    filed = client.post("/v1/cancellations", headers=DIGITAL, json={
        "account": scenario.paypal_payer_id, "subscription": scenario.paypal_subscription_id,
        "reason": "no longer needed"})
    run_worker(container)
    decision = client.get(f"/v1/cancellations/{filed.json['id']}", headers=DIGITAL
                          ).json["decision"]
    assert decision["decision"]["outcome"] == "cancel_at_period_end"  # 001 §2
    with container.sessions() as s:
        (action,) = s.scalars(select(Action).where(Action.kind == "cancel")).all()
    assert action.status == ActionStatus.PENDING and action.next_attempt_at is not None
    assert len(responses.calls) == 0
    responses.post("https://api-m.sandbox.paypal.com/v1/oauth2/token",
                   json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})
    responses.post("https://api-m.sandbox.paypal.com/v1/billing/subscriptions/"
                   f"{scenario.paypal_subscription_id}/cancel", status=204)
    due = action.next_attempt_at + timedelta(seconds=1)
    assert run_action(container, action.id, now=due) == ActionStatus.SUCCEEDED
    assert responses.calls[-1].request.headers["PayPal-Request-Id"] == action.id


def test_a_cancellation_with_a_money_back_claim_files_both(client, container):
    """money_back_payment files a refund claim beside the cancellation; both get decided."""
    scenario, invoice = _stripe_subscription(client, container, "cancel-refund", days_ago=40)
    filed = client.post("/v1/cancellations", headers=HOST, json={
        "account": scenario.customer_id, "subscription": scenario.subscription_id,
        "identity": _identity(invoice), "money_back_payment": scenario.charge_id,
        "reason": "not for me"})
    claim = filed.json["money_back_request"]
    assert claim and claim != filed.json["id"]
    run_worker(container)
    refund = client.get(f"/v1/refund-requests/{claim}", headers=HOST).json
    assert refund["kind"] == "refund" and refund["status"] == "decided"
    assert refund["decision"]["decision"]["outcome"] == "deny"  # 40 days: past the 16-day window
    assert datetime.now(UTC)  # the cancellation itself was decided too
    assert client.get(f"/v1/cancellations/{filed.json['id']}", headers=HOST
                      ).json["status"] == "decided"


@responses.activate
def test_an_uptime_claim_within_72_hours_gets_a_service_credit(client, container):
    """003 §1.12a: 99.6% for web hosting earns a 70% service credit, as account credit: for a
    Stripe customer, a credit on the customer balance (Stripe applies it to the next invoice)."""
    scenario, _ = _stripe_subscription(client, container, "uptime", days_ago=10)
    responses.post(f"https://api.stripe.com/v1/customers/{scenario.customer_id}/"
                   "balance_transactions",
                   json={"id": "cbtxn_1", "object": "customer_balance_transaction",
                         "amount": -700, "currency": "usd", "customer": scenario.customer_id})
    incident = datetime.now(UTC) - timedelta(hours=20)
    filed = client.post("/v1/uptime-claims", headers=HOST, json={
        "account": scenario.customer_id, "subscription": scenario.subscription_id,
        "identity": {"username": "alice", "main_domain": "alice.example",
                     "order_number": "O-1"},
        "uptime": {"measured_percent": "99.6",
                   "incident_at": incident.isoformat().replace("+00:00", "Z"),
                   "cause": "network"}})
    assert filed.status_code == 202
    run_worker(container)
    decision = client.get(f"/v1/uptime-claims/{filed.json['id']}", headers=HOST
                          ).json["decision"]
    assert decision["decision"]["outcome"] == "service_credit"
    assert decision["decision"]["amounts"]["credit"] == {"amount": 700, "currency": "USD"}
    (action,) = decision["actions"]
    assert (action["kind"], action["status"]) == ("credit", "succeeded")
    sent = parse_qs(cast(str, responses.calls[-1].request.body))
    assert sent["amount"] == ["-700"] and sent["currency"] == ["usd"]


@responses.activate
def test_a_paypal_payment_after_the_subscription_ended_is_refunded_less_the_fee(client,
                                                                               container):
    """003 §1.7b/§1.7d: a sale on a cancelled subscription is an overpayment, refunded at once
    less the 5% administration fee, and traced to the event that revealed it."""
    scenario = samples.Scenario(key="overpaid", amount=2000, payment_method="paypal",
                                period_start=int(time.time() - 40 * DAY))
    events = [samples.paypal_event("BILLING.SUBSCRIPTION.CANCELLED", scenario),
              samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=2)]
    events[0]["resource"]["status_update_time"] = events[0]["resource"]["update_time"] = (
        datetime.fromtimestamp(scenario.period(1)[0] + DAY, UTC)
        .isoformat().replace("+00:00", "Z"))
    responses.post("https://api-m.sandbox.paypal.com/v1/oauth2/token",
                   json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})
    sale_id = events[1]["resource"]["id"]
    responses.post(f"https://api-m.sandbox.paypal.com/v1/payments/sale/{sale_id}/refund",
                   json={"id": "RF1", "state": "completed",
                         "amount": {"total": "19.00", "currency": "USD"}})
    for event in events:
        raw = json.dumps(event).encode()
        resp = client.post("/webhooks/theopenhost/paypal", data=raw,
                           headers=shared_signer().headers(raw, "WH-THEOPENHOST-SANDBOX-003"),
                           content_type="application/json")
        assert resp.status_code == 200
        run_worker(container)  # in order: the cancellation is known when the sale arrives
    with container.sessions() as s:
        from ledger.models import Decision, InboxEvent

        decision = s.scalars(select(Decision).where(Decision.request_kind == "overpayment")).one()
        action = s.scalars(select(Action).where(Action.decision_id == decision.id)).one()
        source = s.get(InboxEvent, decision.source_event_id)
        cancelled = s.scalars(select(Decision).where(Decision.request_kind == "cancellation")
                              ).one()  # the cancellation at PayPal was decided too
        assert s.get(InboxEvent, cancelled.source_event_id).event_id == events[0]["id"]
    assert decision.outcome == "partial_refund" and source.event_id == events[1]["id"]
    assert (action.amount, action.status) == (1900, ActionStatus.SUCCEEDED)
    sent = responses.calls[-1].request.body
    assert isinstance(sent, (str, bytes))
    assert json.loads(sent)["amount"]["total"] == "19.00"


@responses.activate
def test_a_cancellation_learnt_after_a_sale_refunds_only_that_subscriptions_own_sales(client,
                                                                                    container):
    """003 §1.7b: the sale arrives first, the cancellation second. The overpayment is that
    subscription's own PayPal sale, traced to the cancellation's event; not a sale of another
    subscription, nor another merchant's payment with the same subscription id, nor a payment of
    another kind, though each was paid after the end."""
    from ledger.models import Decision, InboxEvent

    scenario = samples.Scenario(key="overpaid-late", amount=2000, payment_method="paypal",
                                period_start=int(time.time() - 40 * DAY))
    cancelled = samples.paypal_event("BILLING.SUBSCRIPTION.CANCELLED", scenario)
    sale = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=2)
    ended = datetime.fromtimestamp(scenario.period(1)[0] + DAY, UTC)
    cancelled["resource"]["status_update_time"] = cancelled["resource"]["update_time"] = (
        ended.isoformat().replace("+00:00", "Z"))
    paid = ended + timedelta(days=2)
    sub = scenario.paypal_subscription_id
    strangers = [paypal_payment("theopenhost", "SALE-OTHER-SUB", "I-ANOTHER-SUBSCRIPTION", paid),
                 paypal_payment("digitalcare", "SALE-OTHER-MERCHANT", sub, paid),
                 paypal_payment("theopenhost", "CAPTURE-SAME-SUB", sub, paid, kind="capture")]
    responses.post("https://api-m.sandbox.paypal.com/v1/oauth2/token",
                   json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})
    responses.post(f"https://api-m.sandbox.paypal.com/v1/payments/sale/{sale['resource']['id']}"
                   "/refund", json={"id": "RF1", "state": "completed",
                                    "amount": {"total": "19.00", "currency": "USD"}})
    deliver(client, sale)
    run_worker(container)
    add_in_order(container, *strangers)
    deliver(client, cancelled)
    run_worker(container)
    with container.sessions() as s:
        overpaid = s.scalars(select(Decision).where(Decision.request_kind == "overpayment")).all()
        refunds = s.scalars(select(Action).where(Action.kind == "refund")).all()
        sources = [s.get(InboxEvent, d.source_event_id) for d in overpaid]
    assert [d.payment_ref for d in overpaid] == [sale["resource"]["id"]]
    assert [r.payment_ref for r in refunds] == [sale["resource"]["id"]]
    assert [e.event_id if e is not None else None for e in sources] == [cancelled["id"]]


@responses.activate
def test_a_cancellation_learnt_after_several_sales_decides_them_in_the_order_of_their_ids(
        client, container):
    """Each overpayment decision locks its sale: every worker takes a subscription's sales in
    one order (their PayPal ids), whatever order the ledger learnt them in, so two never wait
    for each other in a circle."""
    from ledger.models import AuditEntry, Decision

    scenario = samples.Scenario(key="overpaid-twice", amount=2000, payment_method="paypal",
                                period_start=int(time.time() - 40 * DAY))
    cancelled = samples.paypal_event("BILLING.SUBSCRIPTION.CANCELLED", scenario)
    ended = datetime.fromtimestamp(scenario.period(1)[0] + DAY, UTC)
    cancelled["resource"]["status_update_time"] = cancelled["resource"]["update_time"] = (
        ended.isoformat().replace("+00:00", "Z"))
    sub = scenario.paypal_subscription_id
    learnt = ["SALE-B-SECOND-ID", "SALE-A-FIRST-ID"]  # the ledger learns B first
    add_in_order(container, *(paypal_payment("theopenhost", sale_id, sub,
                                             ended + timedelta(days=n + 1))
                              for n, sale_id in enumerate(learnt)))
    responses.post("https://api-m.sandbox.paypal.com/v1/oauth2/token",
                   json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})
    for sale_id in learnt:
        responses.post(f"https://api-m.sandbox.paypal.com/v1/payments/sale/{sale_id}/refund",
                       json={"id": f"RF-{sale_id}", "state": "completed",
                             "amount": {"total": "19.00", "currency": "USD"}})
    deliver(client, cancelled)
    run_worker(container)
    with container.sessions() as s:
        overpaid = {d.id: d.payment_ref for d in s.scalars(
            select(Decision).where(Decision.request_kind == "overpayment"))}
        recorded = [e.subject for e in s.scalars(
            select(AuditEntry).where(AuditEntry.action == "decision.recorded")
            .order_by(AuditEntry.id)) if e.subject in overpaid]
    assert [overpaid[d] for d in recorded] == ["SALE-A-FIRST-ID", "SALE-B-SECOND-ID"]


@responses.activate
def test_a_decided_cancellation_writes_its_confirmation_notice(client, container):
    """000 §3: a cancellation is confirmed to the customer through the outbox."""
    from ledger.schedule_models import Notice

    scenario, invoice = _stripe_subscription(client, container, "cancel-notice", days_ago=3)
    responses.post(f"https://api.stripe.com/v1/subscriptions/{scenario.subscription_id}",
                   json={"id": scenario.subscription_id, "status": "active"})
    filed = client.post("/v1/cancellations", headers=HOST, json={
        "account": scenario.customer_id, "subscription": scenario.subscription_id,
        "identity": _identity(invoice)})
    assert filed.status_code == 202
    run_worker(container)
    with container.sessions() as s:
        notices = s.scalars(select(Notice)).all()
    assert [n.kind for n in notices] == ["cancellation_confirmation"]


def test_an_invoice_naming_no_charge_finds_the_charge_that_paid_it(client, container):
    """Stripe's newer invoices carry no ``charge``: the invoice's event, arriving after its
    charge, finds the charge the ledger linked to it (this merchant's, of this invoice, the
    attempt that succeeded), and the 5.00 overpaid is decided; not another merchant's charge
    naming the same invoice id, nor this merchant's charge of another invoice, nor its failed
    first attempt."""
    from ledger.models import Decision, Payment

    scenario = samples.Scenario(key="no-charge-field", amount=2500,
                                period_start=int(time.time() - 2 * DAY))
    invoice = samples.stripe_event("invoice.paid", scenario, amount_due=2000)
    invoice["data"]["object"].pop("charge", None)
    paid = datetime.now(UTC) - timedelta(days=2)

    def stranger(merchant: str, charge_id: str, invoice_ref: str,
                 status: str = "succeeded") -> Payment:
        return Payment(merchant=merchant, provider="stripe", provider_id=charge_id,
                       version_at=paid, version_event=f"evt_{charge_id}", kind="charge",
                       status=status, amount=2100, amount_refunded=0, currency="USD",
                       invoice_ref=invoice_ref, paid_at=paid)

    add_in_order(container, stranger("oneclick", "ch_other_merchant", scenario.invoice_id),
                 stranger("theopenhost", "ch_other_invoice", "in_another"),
                 stranger("theopenhost", "ch_failed_attempt", scenario.invoice_id, "failed"))
    for event in (samples.stripe_event("charge.succeeded", scenario), invoice):
        assert sig.post(client, event).status_code == 200
        run_worker(container)
    with container.sessions() as s:
        (decision,) = s.scalars(select(Decision)).all()
    assert (decision.request_kind, decision.payment_ref) == ("overpayment", scenario.charge_id)
    assert decision.case["payment"]["overpaid_amount"] == {"amount": 500, "currency": "USD"}


def test_an_invoice_naming_no_charge_finds_its_charge_applied_in_the_same_batch(client,
                                                                               container,
                                                                               caplog):
    """The charge's row is written by the same transaction, not yet sent to the database when
    the invoice looks for it: the look-up sends it first, and the overpayment is decided, in
    the batch as a whole (not redone event by event)."""
    from ledger.models import Decision, InboxEvent
    from tests.support.delivery import settle
    from workers.drain import process_batch

    scenario = samples.Scenario(key="same-batch", amount=2500,
                                period_start=int(time.time() - 2 * DAY))
    invoice = samples.stripe_event("invoice.paid", scenario, amount_due=2000)
    invoice["data"]["object"].pop("charge", None)
    for event in (samples.stripe_event("charge.succeeded", scenario), invoice):
        assert sig.post(client, event).status_code == 200
    settle(container)
    with container.sessions() as s:
        ids = list(s.scalars(select(InboxEvent.id).order_by(InboxEvent.id)))
    with caplog.at_level(logging.INFO, logger="workers.drain"):
        assert process_batch(container, ids) == 2
    assert not [r for r in caplog.records if "failed as a whole" in r.getMessage()]
    with container.sessions() as s:
        (decision,) = s.scalars(select(Decision)).all()
    assert (decision.request_kind, decision.payment_ref) == ("overpayment", scenario.charge_id)


def _cancelled_in_stripe(client: FlaskClient, container: Container, key: str,
                         at: datetime) -> None:
    """A One Click subscription of October 2026, paid, then cancelled by the customer in
    Stripe at ``at``; every event applied."""
    scenario = samples.Scenario(key=key, amount=5000,
                                period_start=int(datetime(2026, 10, 1, tzinfo=UTC).timestamp()))
    cancelled_at = int(at.timestamp())
    for event in (samples.stripe_event("customer.subscription.created", scenario),
                  samples.stripe_event("charge.succeeded", scenario),
                  samples.stripe_event("customer.subscription.deleted", scenario,
                                       canceled_at=cancelled_at, ended_at=cancelled_at)):
        assert sig.post(client, event, merchant="oneclick",
                        secret="whsec_test_oneclick_current").status_code == 200
        run_worker(container)


def test_a_late_cancellation_at_the_provider_goes_to_review_for_the_period_owed(client,
                                                                                container):
    """000: cancelled in Stripe on the 26th: the next month is owed, which the provider will no
    longer bill, so the decision waits in review saying so; the customer is still confirmed."""
    from ledger.models import Decision, DecisionStatus, InboxEvent
    from ledger.schedule_models import Notice

    _cancelled_in_stripe(client, container, "late-cancel",
                         datetime(2026, 10, 26, 12, tzinfo=UTC))
    with container.sessions() as s:
        decision = s.scalars(select(Decision)).one()
        source = s.get(InboxEvent, decision.source_event_id)
        notices = s.scalars(select(Notice)).all()
    assert source.event_type == "customer.subscription.deleted"
    assert decision.outcome == "cancel_next_period", decision.decision["reasons"]
    assert decision.status == DecisionStatus.NEEDS_REVIEW
    assert "owed" in decision.status_reason
    assert [n.kind for n in notices] == ["cancellation_confirmation"]


def test_a_cancellation_is_timed_on_the_merchants_calendar(client, container):
    """000 on One Click's calendar (America/New_York in the shipped merchants file): cancelled at
    03:30 UTC on the 25th, which is 23:30 on the 24th in New York, so it is on time. Read in
    UTC it would be the 25th and cost a month."""
    from ledger.models import Decision

    _cancelled_in_stripe(client, container, "ny-cancel",
                         datetime(2026, 10, 25, 3, 30, tzinfo=UTC))
    with container.sessions() as s:
        decision = s.scalars(select(Decision)).one()
    assert decision.case["time_zone"] == "America/New_York"
    assert decision.outcome == "cancel_at_period_end", decision.decision["reasons"]
    assert decision.decision["dates"]["effective_at"] == "2026-11-01T04:00:00Z"
    details = " ".join(r["detail"] for r in decision.decision["reasons"])
    assert "received on day 24 of the month (2026-10-24, America/New_York" in details


@responses.activate
@pytest.mark.parametrize("charge_first", [True, False], ids=["charge first", "invoice first"])
def test_a_charge_above_what_its_invoice_owed_is_refunded_once_in_any_order(client, container,
                                                                           charge_first):
    """25.00 paid for 20.00 owed is 5.00 overpaid, decided once whichever of the invoice and
    the charge arrives first. 003's overpayment clauses speak of PayPal only, so a Stripe
    overpayment waits for a person; approving it refunds the 5.00."""
    from ledger.models import Decision

    scenario = samples.Scenario(key=f"overpaid-{charge_first}", amount=2500,
                                period_start=int(time.time() - 2 * DAY))
    invoice = samples.stripe_event("invoice.paid", scenario, amount_due=2000)
    charge = samples.stripe_event("charge.succeeded", scenario)
    responses.add_callback(responses.POST, "https://api.stripe.com/v1/refunds",
                           callback=lambda req: (200, {}, json.dumps({
                               "id": "re_over", "object": "refund", "status": "succeeded",
                               "amount": int(parse_qs(cast(str, req.body))["amount"][0]),
                               "currency": "usd", "charge": scenario.charge_id})))
    for event in ((charge, invoice) if charge_first else (invoice, charge)):
        assert sig.post(client, event).status_code == 200
        run_worker(container)
    with container.sessions() as s:
        (decision,) = s.scalars(select(Decision)).all()
    assert decision.request_kind == "overpayment" and decision.outcome == "needs_review"
    assert decision.case["payment"]["overpaid_amount"] == {"amount": 500, "currency": "USD"}
    resp = client.post(f"/v1/reviews/{decision.id}", headers=HOST, json={
        "approve": True, "reviewer": "kim@finance", "refund": {"amount": 500, "currency": "USD"}})
    assert resp.status_code == 200
    run_worker(container)
    with container.sessions() as s:
        action = s.scalars(select(Action)).one()
    assert (action.amount, action.payment_ref, action.status) == (
        500, scenario.charge_id, ActionStatus.SUCCEEDED)
