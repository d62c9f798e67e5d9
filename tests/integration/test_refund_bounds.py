"""Money leaves at most once: the ledger bounds every refund by what is left of its payment
(refunds done, in flight and pending counted, ours and the provider's), holds refunds back while
a payment is disputed, and decides a guarantee refund knowing the ones already decided."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from sqlalchemy import func, select

from ledger.models import Action, AuditEntry, Decision, SupportRequest
from sandbox import samples
from tests.support.claims import file_refund, headers, in_review, paid, send
from tests.support.delivery import run_worker
from tests.support.providers import stripe_balance_answered
from workers.actions import run_action
from workers.decide import decide
from workers.requests import decide_request

STRIPE_REFUNDS = "https://api.stripe.com/v1/refunds"
MERCHANT = "theopenhost"


def _stripe_refunds() -> list[Any]:
    return [c for c in responses.calls if c.request.method == "POST"
            and c.request.url is not None and c.request.url.startswith(STRIPE_REFUNDS)]


def _reply(request: Any) -> tuple[int, dict[str, str], str]:
    form = parse_qs(request.body)
    return 200, {}, json.dumps({
        "id": f"re_{form['metadata[action_id]'][0][-10:]}", "object": "refund",
        "status": "succeeded", "amount": int(form["amount"][0]), "currency": "usd",
        "charge": form["charge"][0], "metadata": {"action_id": form["metadata[action_id]"][0]}})


def _refunded_elsewhere(client: Any, scenario: samples.Scenario, amount: int) -> None:
    """A refund made in the Stripe dashboard (no action of ours), reported by its webhook."""
    event = samples.stripe_event("refund.updated", scenario, amount=amount,
                                 metadata={}, id=f"re_dash_{amount}")
    send(client, MERCHANT, event)


def _dispute(client: Any, scenario: samples.Scenario, status: str) -> None:
    event_type = {"needs_response": "created", "lost": "closed", "won": "closed"}[status]
    event = samples.stripe_event("charge.dispute.created", scenario, status=status)
    event["type"] = f"charge.dispute.{event_type}"
    event["id"] = f"evt_dispute_{status}_{scenario.key}"
    event["created"] += {"needs_response": 0, "lost": 86400, "won": 86400}[status]
    send(client, MERCHANT, event)


def _decision_of(client: Any, request_id: str) -> dict[str, Any]:
    """The request's Decision as evaluated, with the ledger's status, Case and actions."""
    shown = client.get(f"/v1/refund-requests/{request_id}", headers=headers(MERCHANT)).json
    assert shown["decision"] is not None, shown
    row = shown["decision"]
    return {**row["decision"], **{k: row[k] for k in ("id", "status", "status_reason", "case",
                                                      "actions")}}


def _decided_not_executed(container: Any, request_id: str) -> str:
    """Decide the request now and hold back its refund action (as if the worker that would
    run it were slow); returns the action's id."""
    container.queue.empty()
    decide_request(container, request_id)
    container.queue.empty()
    with container.sessions() as session:
        return str(session.scalars(select(Action.id)).one())


def _failing(decision: dict[str, Any]) -> list[str]:
    return [r["clause"] for r in decision["reasons"] if not r["holds"]]


@responses.activate
def test_a_full_refund_is_granted_once_and_paid_once(client, container):
    """The guarantee's full refund is decided with one action and paid once."""
    responses.add_callback(responses.POST, STRIPE_REFUNDS, callback=_reply)
    scenario = paid(client, container, "bound-once", days_ago=3)
    filed = file_refund(client, MERCHANT, scenario)
    run_worker(container)
    decision = _decision_of(client, filed.json["id"])
    assert decision["outcome"] == "full_refund"
    assert decision["case"]["order"]["refundable"] == {"amount": 12000, "currency": "USD"}
    assert [a["status"] for a in decision["actions"]] == ["succeeded"]
    assert len(_stripe_refunds()) == 1


@responses.activate
def test_a_decision_made_while_a_refund_is_pending_creates_no_second_refund(client, container):
    """The ledger counts a pending refund action: a second decision for the payment, even one
    whose Case knew nothing of it, is held for review with no refund action."""
    scenario = paid(client, container, "bound-pending", days_ago=3)
    filed = file_refund(client, MERCHANT, scenario)
    decide_request(container, filed.json["id"])  # decided; its refund not yet executed
    with container.sessions() as session:
        case = session.scalars(select(Decision.case)).one()
    case["order"].pop("refundable")  # a Case that says nothing of the refund already decided
    second = decide(container, MERCHANT, case, payment_ref=scenario.charge_id,
                    account_ref=scenario.customer_id)
    with container.sessions() as session:
        held = session.get(Decision, second)
        assert held is not None and held.outcome == "full_refund"
        assert held.status == "needs_review"
        assert "left to refund" in (held.status_reason or "")
        assert session.scalar(select(func.count()).select_from(Action)
                              .where(Action.decision_id == second)) == 0
    assert _stripe_refunds() == []


@responses.activate
def test_a_refund_made_elsewhere_leaves_only_the_rest_to_refund(client, container):
    """After a 40.00 dashboard refund of a 120.00 charge, a full refund is held for review
    proposing the 80.00 left, citing the gateway's remainder rule; nothing is paid."""
    scenario = paid(client, container, "bound-partial", days_ago=3)
    _refunded_elsewhere(client, scenario, 4000)
    run_worker(container)
    filed = file_refund(client, MERCHANT, scenario)
    run_worker(container)
    decision = _decision_of(client, filed.json["id"])
    assert decision["outcome"] == "needs_review"
    assert decision["case"]["order"]["refundable"]["amount"] == 8000
    assert decision["amounts"]["proposed_refund"]["amount"] == 8000
    assert "gateway: refundable remainder" in _failing(decision)
    assert decision["actions"] == [] and _stripe_refunds() == []


@responses.activate
def test_a_payment_refunded_in_full_elsewhere_is_denied(client, container):
    """Nothing left to refund: the policy's full refund becomes a denial saying so."""
    scenario = paid(client, container, "bound-full", days_ago=3)
    _refunded_elsewhere(client, scenario, 12000)
    run_worker(container)
    filed = file_refund(client, MERCHANT, scenario)
    run_worker(container)
    decision = _decision_of(client, filed.json["id"])
    assert decision["outcome"] == "deny" and decision["actions"] == []
    assert "gateway: refundable remainder" in _failing(decision)
    assert _stripe_refunds() == []


@responses.activate
def test_a_refund_taken_by_another_before_execution_is_not_made(client, container):
    """A dashboard refund that lands between the decision and the action: the action fails
    cleanly (no provider call) and its decision goes back to review."""
    responses.add_callback(responses.POST, STRIPE_REFUNDS, callback=_reply)
    scenario = paid(client, container, "bound-late", days_ago=3)
    filed = file_refund(client, MERCHANT, scenario)
    action_id = _decided_not_executed(container, filed.json["id"])
    _refunded_elsewhere(client, scenario, 5000)
    run_worker(container)
    assert run_action(container, action_id) == "failed"
    decision = _decision_of(client, filed.json["id"])
    (action,) = decision["actions"]
    assert action["status"] == "failed" and action["failure_code"] == "exceeds_remainder"
    assert decision["status"] == "needs_review"
    assert _stripe_refunds() == []


@pytest.mark.parametrize("status", ["needs_response", "lost"])
@responses.activate
def test_a_disputed_charge_is_not_refunded(client, container, status):
    """An open or lost dispute holds the refund for review, citing the dispute rule."""
    scenario = paid(client, container, f"bound-dispute-{status}", days_ago=3)
    _dispute(client, scenario, "needs_response")
    if status == "lost":
        _dispute(client, scenario, "lost")
    run_worker(container)
    filed = file_refund(client, MERCHANT, scenario)
    run_worker(container)
    decision = _decision_of(client, filed.json["id"])
    assert decision["outcome"] == "needs_review" and decision["actions"] == []
    assert decision["case"]["order"]["dispute"] == ("open" if status != "lost" else "lost")
    assert "gateway: disputes" in _failing(decision)
    approve = client.post(f"/v1/reviews/{decision['id']}", headers=headers(MERCHANT), json={
        "approve": True, "reviewer": "kim", "refund": {"amount": 100, "currency": "USD"}})
    assert approve.status_code == 409 and "dispute" in approve.json["error"]["message"]
    assert _stripe_refunds() == []


@responses.activate
def test_a_dispute_won_lets_the_refund_through(client, container):
    """A dispute closed in the merchant's favour no longer holds a refund back."""
    responses.add_callback(responses.POST, STRIPE_REFUNDS, callback=_reply)
    scenario = paid(client, container, "bound-won", days_ago=3)
    _dispute(client, scenario, "needs_response")
    _dispute(client, scenario, "won")
    run_worker(container)
    filed = file_refund(client, MERCHANT, scenario)
    run_worker(container)
    decision = _decision_of(client, filed.json["id"])
    assert decision["outcome"] == "full_refund" and len(_stripe_refunds()) == 1


@responses.activate
def test_a_dispute_opened_before_execution_stops_the_refund(client, container):
    """A chargeback that arrives after the decision: the action fails as disputed, unpaid."""
    responses.add_callback(responses.POST, STRIPE_REFUNDS, callback=_reply)
    scenario = paid(client, container, "bound-dispute-late", days_ago=3)
    filed = file_refund(client, MERCHANT, scenario)
    action_id = _decided_not_executed(container, filed.json["id"])
    _dispute(client, scenario, "needs_response")
    run_worker(container)
    assert run_action(container, action_id) == "failed"
    (action,) = _decision_of(client, filed.json["id"])["actions"]
    assert action["status"] == "failed" and action["failure_code"] == "disputed"
    assert _stripe_refunds() == []


def test_a_guarantee_refund_counts_from_its_decision(client, container):
    """A second charge of the same customer, claimed while the first refund is still pending,
    sees that refund in the Case (003 §1.1c: once per customer) and is not refunded."""
    first = paid(client, container, "bound-guarantee-1", days_ago=3)
    second = samples.Scenario(key="bound-guarantee-2", amount=12000,
                              period_start=first.period_start)
    for event_type in ("customer.subscription.created", "invoice.paid", "charge.succeeded"):
        send(client, MERCHANT, samples.stripe_event(event_type, second,
                                                    customer=first.customer_id))
    run_worker(container)
    one = file_refund(client, MERCHANT, first)
    decide_request(container, one.json["id"])  # recorded; the refund not yet made
    two = file_refund(client, MERCHANT, second, account=first.customer_id)
    decide_request(container, two.json["id"])
    decision = _decision_of(client, two.json["id"])
    assert decision["case"]["account"]["prior_guarantee_refunds"] == 1
    assert decision["outcome"] != "full_refund" and decision["actions"] == []


def test_a_payment_of_another_account_is_refused_naming_both(client, container):
    """Customer B cannot claim customer A's charge: 400 naming the payment and its owner."""
    a = paid(client, container, "owner-a", days_ago=3)
    b = paid(client, container, "owner-b", days_ago=3)
    resp = file_refund(client, MERCHANT, a, account=b.customer_id)
    assert resp.status_code == 400 and resp.json["error"]["field"] == "payment"
    assert a.customer_id in resp.json["error"]["message"]
    assert b.customer_id in resp.json["error"]["message"]
    with container.sessions() as session:
        assert session.scalar(select(func.count()).select_from(SupportRequest)) == 0


def test_a_payment_learnt_after_filing_is_refused_when_decided(client, container):
    """Filed before the ledger knew the charge, decided after: the request fails, naming both
    accounts, and nothing is decided."""
    a = samples.Scenario(key="owner-late", amount=12000)
    filed = file_refund(client, MERCHANT, a, account="cus_someone_else")
    assert filed.status_code == 202
    container.queue.empty()  # decided below, once the ledger holds the charge
    for event_type in ("customer.subscription.created", "invoice.paid", "charge.succeeded"):
        send(client, MERCHANT, samples.stripe_event(event_type, a))
    run_worker(container)
    decide_request(container, filed.json["id"])
    shown = client.get(f"/v1/refund-requests/{filed.json['id']}",
                       headers=headers(MERCHANT)).json
    assert shown["status"] == "failed" and shown["decision"] is None
    assert a.customer_id in shown["error"] and "cus_someone_else" in shown["error"]


@pytest.mark.parametrize("route", ["/v1/cancellations", "/v1/uptime-claims"])
def test_a_subscription_of_another_account_is_refused(client, container, route):
    """Cancelling or claiming uptime on another customer's subscription: 400 naming it."""
    a = paid(client, container, f"owner-sub-a{route[-3:]}", days_ago=3)
    body: dict[str, Any] = {"account": "cus_intruder", "subscription": a.subscription_id,
                            "identity": {"verified": True}}
    if route == "/v1/uptime-claims":
        body["uptime"] = {"measured_percent": "98.0", "incident_at": "2026-11-01T00:00:00Z"}
    resp = client.post(route, json=body, headers=headers(MERCHANT))
    assert resp.status_code == 400 and resp.json["error"]["field"] == "subscription"
    assert a.customer_id in resp.json["error"]["message"]


@pytest.mark.parametrize(("credit", "field"), [
    ({"amount": 100, "currency": "ZZZ"}, "credit.currency"),
    ({"amount": 100, "currency": "EUR"}, "credit.currency"),
    ({"amount": -100, "currency": "USD"}, "credit.amount"),
    ({"amount": 0, "currency": "USD"}, "credit.amount"),
    ({"amount": 12001, "currency": "USD"}, "credit.amount"),
    ({"amount": 100000000000000, "currency": "USD"}, "credit.amount"),
])
def test_a_bad_credit_in_review_is_refused_and_nothing_is_written(client, container, credit,
                                                                  field):
    """Unknown or other currency, negative, zero, above the payment: 400 naming the field."""
    _, decision_id = in_review(client, container, f"credit-{field}-{credit['amount']}")
    with container.sessions() as session:
        audit_before = session.scalar(select(func.count()).select_from(AuditEntry))
    resp = client.post(f"/v1/reviews/{decision_id}", headers=headers(MERCHANT), json={
        "approve": True, "reviewer": "kim", "credit": credit})
    assert resp.status_code == 400 and resp.json["error"]["field"] == field, resp.json
    with container.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Action)) == 0
        assert session.get(Decision, decision_id).status == "needs_review"
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == audit_before


@responses.activate
def test_a_credit_up_to_the_payment_is_granted(client, container):
    """The bound is the payment's amount: 120.00 of a 120.00 charge is granted."""
    stripe_balance_answered()
    _, decision_id = in_review(client, container, "credit-ok")
    resp = client.post(f"/v1/reviews/{decision_id}", headers=headers(MERCHANT), json={
        "approve": True, "reviewer": "kim", "credit": {"amount": 12000, "currency": "USD"}})
    assert resp.status_code == 200
    run_worker(container)
    assert client.get(f"/v1/decisions/{decision_id}", headers=headers(MERCHANT)
                      ).json["status"] == "executed"


@responses.activate
def test_an_approval_above_what_is_left_is_refused(client, container):
    """With 100.00 of 120.00 refunded elsewhere, approving 30.00 is a 400 naming the amount
    left; 20.00 is paid."""
    responses.add_callback(responses.POST, STRIPE_REFUNDS, callback=_reply)
    scenario, decision_id = in_review(client, container, "approve-left")
    _refunded_elsewhere(client, scenario, 10000)
    run_worker(container)
    url = f"/v1/reviews/{decision_id}"
    too_much = client.post(url, headers=headers(MERCHANT), json={
        "approve": True, "reviewer": "kim", "refund": {"amount": 3000, "currency": "USD"}})
    assert too_much.status_code == 400 and too_much.json["error"]["field"] == "refund.amount"
    assert "20.00 USD" in too_much.json["error"]["message"]
    ok = client.post(url, headers=headers(MERCHANT), json={
        "approve": True, "reviewer": "kim", "refund": {"amount": 2000, "currency": "USD"}})
    assert ok.status_code == 200
    run_worker(container)
    assert [parse_qs(c.request.body)["amount"] for c in _stripe_refunds()] == [["2000"]]


def test_run_action_refuses_a_refund_over_the_remainder_without_calling(client, container):
    """An action planted above the remainder (as a bug elsewhere might) is refused at
    execution: the provider is never called."""
    scenario = paid(client, container, "bound-planted", days_ago=3)
    filed = file_refund(client, MERCHANT, scenario, product_category="custom_widget")
    run_worker(container)
    with container.sessions() as session, session.begin():
        decision = session.scalars(select(Decision)).one()
        session.add(Action(id="act_planted", decision_id=decision.id, merchant=MERCHANT,
                           kind="refund", provider="stripe", target_kind="charge",
                           payment_ref=scenario.charge_id, account_ref=scenario.customer_id,
                           amount=12001, currency="USD", reason="planted",
                           created_at=decision.evaluated_at, updated_at=decision.evaluated_at))
    with responses.RequestsMock() as mock:  # any HTTP call fails the test
        assert run_action(container, "act_planted") == "failed"
        assert [c.request.url for c in mock.calls] == []
    assert filed.status_code == 202
