"""Decisions carried out through Stripe, PayPal and the ledger, with the exact provider requests."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import AccountCredit, Action, ActionStatus, Decision, DecisionStatus, Refund
from sandbox import samples
from service.bootstrap import Container
from tests.support import cases
from tests.support.delivery import deliver, run_worker
from tests.support.paypal import shared_signer
from workers.actions import run_action
from workers.decide import decide

STRIPE_REFUNDS = "https://api.stripe.com/v1/refunds"
PAYPAL = "https://api-m.sandbox.paypal.com"
MERCHANT = "theopenhost"


def _stripe_charge(client: FlaskClient, container: Container, amount: int,
                   currency: str = "usd") -> str:
    scenario = samples.Scenario(key=f"charge-{amount}-{currency}", amount=amount,
                                currency=currency)
    deliver(client, "stripe", samples.stripe_event("charge.succeeded", scenario))
    run_worker(container)
    return scenario.charge_id


def _paypal_payment(client: FlaskClient, container: Container, event_type: str, amount: int = 12000,
                    currency: str = "USD") -> str:
    scenario = samples.Scenario(key=f"pp-{event_type}-{currency}", amount=amount,
                                currency=currency, payment_method="paypal")
    event = samples.paypal_event(event_type, scenario)
    deliver(client, "paypal", event, shared_signer())
    run_worker(container)
    return str(event["resource"]["id"])


def _stripe_refund_body(request_body: str) -> dict[str, list[str]]:
    return parse_qs(request_body)


def _refund_json(amount: int, charge: str, action_id: str, status: str = "succeeded",
                 currency: str = "usd") -> dict[str, Any]:
    return {"id": "re_test_1", "object": "refund", "amount": amount, "charge": charge,
            "currency": currency, "status": status, "metadata": {"action_id": action_id}}


def _only_action(container: Container) -> Action:
    with container.sessions() as s:
        return s.scalars(select(Action)).one()


@responses.activate
def test_a_partial_stripe_refund_sends_the_exact_request_and_is_recorded(client, container):
    """Amount, charge, reason, metadata and Idempotency-Key are exactly what Stripe expects."""
    charge = _stripe_charge(client, container, 12000)
    decision_id = decide(container, MERCHANT,
                         cases.guarantee_claim(12000, addons=("ssl_certificate",)),
                         payment_ref=charge, account_ref="cus_1", now=cases.DECIDED_AT)
    action = _only_action(container)
    responses.post(STRIPE_REFUNDS, json=_refund_json(11000, charge, action.id))
    run_worker(container)

    (call,) = responses.calls
    assert isinstance(call.request.body, str)
    form = _stripe_refund_body(call.request.body)
    assert form["amount"] == ["11000"] and form["charge"] == [charge]
    assert form["reason"] == ["requested_by_customer"]
    assert form["metadata[action_id]"] == [action.id]
    assert form["metadata[decision_id]"] == [decision_id]
    assert form["metadata[clause]"] == ["003 §1.1"]
    assert call.request.headers["Idempotency-Key"] == action.id
    with container.sessions() as s:
        action = s.get(Action, action.id)
        assert action.status == ActionStatus.SUCCEEDED and action.provider_ref == "re_test_1"
        refund = s.scalars(select(Refund)).one()
        assert (refund.amount, refund.action_id, refund.unsolicited) == (11000, action.id, False)
        assert s.get(Decision, decision_id).status == DecisionStatus.EXECUTED


@responses.activate
def test_a_full_refund_in_yen_is_sent_in_whole_yen(client, container):
    """JPY is zero-decimal: 12000 JPY is amount=12000, not 120.00."""
    charge = _stripe_charge(client, container, 12000, "jpy")
    decide(container, MERCHANT, cases.guarantee_claim(12000, "JPY"), payment_ref=charge,
           account_ref="cus_1", now=cases.DECIDED_AT)
    action = _only_action(container)
    assert (action.amount, action.currency) == (12000, "JPY")
    responses.post(STRIPE_REFUNDS, json=_refund_json(12000, charge, action.id, currency="jpy"))
    run_worker(container)
    sent = responses.calls[0].request.body
    assert isinstance(sent, str)
    assert _stripe_refund_body(sent)["amount"] == ["12000"]


@responses.activate
@pytest.mark.parametrize(("event_type", "path", "amount_key", "key_field"), [
    ("PAYMENT.SALE.COMPLETED", "/v1/payments/sale/{id}/refund", "total", "invoice_number"),
    ("PAYMENT.CAPTURE.COMPLETED", "/v2/payments/captures/{id}/refund", "value", "custom_id"),
])
def test_paypal_refunds_go_to_the_sale_or_capture_endpoint(client, container, event_type, path,
                                                            amount_key, key_field):
    """v1 sales and v2 captures each get their own endpoint, a decimal string and the key."""
    payment = _paypal_payment(client, container, event_type)
    decide(container, MERCHANT, cases.guarantee_claim(12000, provider="paypal",
                                                      addons=("ssl_certificate",)),
           payment_ref=payment, account_ref="payer", now=cases.DECIDED_AT)
    action = _only_action(container)
    responses.post(f"{PAYPAL}/v1/oauth2/token",
                   json={"access_token": "A21-token", "token_type": "Bearer", "expires_in": 3600})
    responses.post(PAYPAL + path.format(id=payment),
                   json={"id": "8RP12345", "status": "COMPLETED", "state": "completed",
                         "amount": {amount_key: "110.00",
                                    "currency_code" if amount_key == "value" else "currency":
                                        "USD"}})
    run_worker(container)

    token_call, refund_call = responses.calls
    assert isinstance(refund_call.request.body, (str, bytes))
    body = json.loads(refund_call.request.body)
    assert body["amount"][amount_key] == "110.00" and body[key_field] == action.id
    assert refund_call.request.headers["PayPal-Request-Id"] == action.id
    assert refund_call.request.headers["Authorization"] == "Bearer A21-token"
    assert _only_action(container).status == ActionStatus.SUCCEEDED


def test_an_old_overpayment_becomes_ledger_credit_once(client, container):
    """Over 45 days old: account credit less the 5% fee, granted once however often it runs,
    under 003 §1.7c (which turns it into credit), not §1.7b (which it fails)."""
    decision_id = decide(container, MERCHANT, cases.overpayment(timedelta(days=46)),
                         account_ref="payer-9", now=cases.ORDERED + timedelta(days=46))
    action = _only_action(container)
    assert (action.clause, action.reason) == ("003 §1.7c", "account_credit under 003 §1.7c")
    run_worker(container)
    assert run_action(container, action.id) == ActionStatus.SUCCEEDED  # a retried job
    with container.sessions() as s:
        (credit,) = s.scalars(select(AccountCredit)).all()
        assert (credit.amount, credit.currency, credit.account_ref) == (950, "USD", "payer-9")
        assert credit.clause == action.clause and credit.decision_id == decision_id
        assert s.get(Decision, decision_id).status == DecisionStatus.EXECUTED
    from adapters.ledger_credit import balance

    with container.sessions() as s:
        assert balance(s, MERCHANT, "payer-9", "USD").amount == 950


@responses.activate
@pytest.mark.parametrize(("status", "error", "final", "code"), [
    (400, {"code": "charge_already_refunded", "type": "invalid_request_error"}, "failed",
     "already_refunded"),
    (400, {"code": "amount_too_large", "type": "invalid_request_error"}, "failed",
     "amount_too_large"),
    (400, {"code": "charge_disputed", "type": "invalid_request_error"}, "failed", "disputed"),
    (429, {"type": "invalid_request_error", "code": "rate_limit"}, "pending", "rate_limited"),
    (500, {"type": "api_error"}, "pending", "unavailable"),
])
def test_stripe_errors_end_in_a_clear_state(client, container, status, error, final, code):
    """Refusals fail the action and reopen the decision; transient errors schedule a retry."""
    charge = _stripe_charge(client, container, 12000)
    decision_id = decide(container, MERCHANT, cases.guarantee_claim(12000), payment_ref=charge,
                         account_ref="cus_1", now=cases.DECIDED_AT)
    responses.post(STRIPE_REFUNDS, status=status, json={"error": {**error, "message": "no"}})
    run_worker(container)
    with container.sessions() as s:
        action = s.scalars(select(Action)).one()
        decision = s.get(Decision, decision_id)
    assert (action.status, action.failure_code) == (final, code)
    if final == "failed":
        assert decision.status == DecisionStatus.NEEDS_REVIEW
        assert code in decision.status_reason
    else:
        assert action.next_attempt_at is not None and decision.status == DecisionStatus.RECORDED


@responses.activate
def test_a_paypal_refund_time_limit_fails_the_action_for_review(client, container):
    """PayPal's REFUND_TIME_LIMIT_EXCEEDED is final: failed, with the decision reopened."""
    payment = _paypal_payment(client, container, "PAYMENT.CAPTURE.COMPLETED")
    decide(container, MERCHANT, cases.guarantee_claim(12000, provider="paypal"),
           payment_ref=payment, account_ref="payer", now=cases.DECIDED_AT)
    responses.post(f"{PAYPAL}/v1/oauth2/token",
                   json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})
    responses.post(f"{PAYPAL}/v2/payments/captures/{payment}/refund", status=422,
                   json={"name": "UNPROCESSABLE_ENTITY", "debug_id": "d1",
                         "details": [{"issue": "REFUND_TIME_LIMIT_EXCEEDED"}]})
    run_worker(container)
    action = _only_action(container)
    assert (action.status, action.failure_code) == ("failed", "refund_time_limit")


@responses.activate
def test_a_resumed_stripe_attempt_finds_the_refund_instead_of_posting_again(client, container):
    """After a crash mid-call, the retry looks the refund up by its key: one POST in all."""
    charge = _stripe_charge(client, container, 12000)
    decide(container, MERCHANT, cases.guarantee_claim(12000), payment_ref=charge,
           account_ref="cus_1", now=cases.DECIDED_AT)
    action = _only_action(container)
    with container.sessions() as s, s.begin():  # as a worker killed after its POST leaves it
        s.get(Action, action.id).status = ActionStatus.EXECUTING
    responses.get(STRIPE_REFUNDS, json={"object": "list", "has_more": False, "url": "/v1/refunds",
                                        "data": [_refund_json(12000, charge, action.id)]})
    assert run_action(container, action.id) == ActionStatus.SUCCEEDED
    assert [c.request.method for c in responses.calls] == ["GET"]
    url = responses.calls[0].request.url
    assert url is not None and f"charge={charge}" in url


@responses.activate
def test_refund_webhooks_confirm_or_reopen_and_strangers_are_flagged(client, container):
    """refund.updated confirms our action, refund.failed reopens it, a dashboard refund is
    flagged."""
    charge = _stripe_charge(client, container, 12000)
    decision_id = decide(container, MERCHANT, cases.guarantee_claim(12000), payment_ref=charge,
                         account_ref="cus_1", now=cases.DECIDED_AT)
    action = _only_action(container)
    responses.post(STRIPE_REFUNDS, json=_refund_json(12000, charge, action.id, status="pending"))
    run_worker(container)
    assert _only_action(container).status == ActionStatus.SUBMITTED

    scenario = samples.Scenario(key="charge-12000-usd", amount=12000)
    failed = samples.stripe_event("refund.failed", scenario, id="re_test_1", status="failed",
                                  failure_reason="expired_or_canceled_card",
                                  metadata={"action_id": action.id})
    stranger = samples.stripe_event("refund.created", samples.Scenario(key="dashboard"))
    for event in (failed, stranger):
        deliver(client, "stripe", event)
    run_worker(container)
    with container.sessions() as s:
        assert s.get(Action, action.id).status == ActionStatus.FAILED
        decision = s.get(Decision, decision_id)
        assert decision.status == DecisionStatus.NEEDS_REVIEW
        assert "expired_or_canceled_card" in decision.status_reason
        flagged = s.scalars(select(Refund).where(Refund.unsolicited.is_(True))).one()
        assert flagged.provider_id == stranger["data"]["object"]["id"]


@responses.activate
def test_refund_webhooks_applied_in_one_batch_find_their_action_as_the_batch_left_it(
        client, container):
    """A worker was killed after its refund POST (the action executing, the refund's id not
    recorded). Its two webhooks then arrive and are applied in one batch: refund.created,
    which names the action, then refund.updated, which does not (no metadata): the second finds
    the action by the refund id the first recorded on it in the same transaction, so the refund
    is ours, not a stranger's, and the action is settled."""
    charge = _stripe_charge(client, container, 12000)
    decide(container, MERCHANT, cases.guarantee_claim(12000), payment_ref=charge,
           account_ref="cus_1", now=cases.DECIDED_AT)
    action = _only_action(container)
    with container.sessions() as s, s.begin():
        s.get(Action, action.id).status = ActionStatus.EXECUTING
    container.redis.delete(*container.redis.keys("rq:*"))  # its job died with the worker
    scenario = samples.Scenario(key="charge-12000-usd", amount=12000)
    created = samples.stripe_event("refund.created", scenario, id="re_test_1", status="pending",
                                   metadata={"action_id": action.id})
    updated = samples.stripe_event("refund.updated", scenario, id="re_test_1",
                                   status="succeeded")
    updated["created"] = created["created"] + 60
    for event in (created, updated):
        deliver(client, "stripe", event)
    run_worker(container)
    with container.sessions() as s:
        assert [(r.provider_id, r.status, r.action_id, r.unsolicited)
                for r in s.scalars(select(Refund))] == [("re_test_1", "succeeded", action.id,
                                                         False)]
        assert (s.get(Action, action.id).status, s.get(Action, action.id).provider_ref) == (
            ActionStatus.SUCCEEDED, "re_test_1")
    assert not responses.calls  # nothing was sent to Stripe


@responses.activate
def test_credit_goes_to_the_stripe_customer_balance_when_the_merchant_asks(
        database_url, redis_url, other_container, container):
    """With credit_to_customer_balance, credit is a negative balance transaction, keyed once."""
    import dataclasses

    from service.bootstrap import install

    base = other_container(database_url, redis_url)
    merchant = base.settings.merchants[MERCHANT]
    stripe_settings = dataclasses.replace(merchant.stripe, credit_to_customer_balance=True)
    merchants = {**base.settings.merchants,
                 MERCHANT: dataclasses.replace(merchant, stripe=stripe_settings)}
    c = other_container(database_url, redis_url, merchants=merchants)
    install(c)
    decide(c, MERCHANT, cases.overpayment(timedelta(days=46)), account_ref="cus_42",
           now=cases.ORDERED + timedelta(days=46))
    action = _only_action(c)
    responses.post("https://api.stripe.com/v1/customers/cus_42/balance_transactions",
                   json={"id": "cbtxn_1", "object": "customer_balance_transaction",
                         "amount": -950, "currency": "usd"})
    run_worker(c)
    (call,) = responses.calls
    assert isinstance(call.request.body, str)
    form = parse_qs(call.request.body)
    assert form["amount"] == ["-950"] and form["currency"] == ["usd"]
    assert call.request.headers["Idempotency-Key"] == action.id
    with c.sessions() as s:
        assert s.get(Action, action.id).provider_ref == "cbtxn_1"
        credit = s.scalars(select(AccountCredit)).one()
        assert credit.amount == 950 and "cbtxn_1" in credit.reason
    install(container)
