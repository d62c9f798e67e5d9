"""What the worker records once a provider call has answered.

* Every answer: the action records the provider's id for what was done and is dated when the
  worker ran; each change of the action is one audit entry by the worker.
* A credit on the Stripe customer balance: the ledger holds the grant too, as held by Stripe,
  and the action succeeded.
* A cancellation: the action succeeded, its decision executed once all its actions are done,
  and no refund and no credit are recorded for it.
* A refund: our call's answer is recorded as the refund's row (ours, dated when the worker ran,
  as the provider described it). Made (Stripe's "succeeded", PayPal's "COMPLETED"), the action
  succeeded; accepted but not made yet (Stripe's "pending", "requires_action"), it is submitted
  and waits for the refund's webhook; failed or canceled, it failed as its webhook would say it
  (failure code refund_failed, "refund <id> <the provider's own status>: <the provider's reason,
  or no reason given>", the reason kept on the refund row too) and its decision is back in
  review saying "the provider reported" that (a decision that applied account credit is closed
  instead, the credit back). A made or accepted refund
  executes its decision once all its actions are done; not before.
* A refund whose webhook settled it (made or failed) while our call was out: the call's late
  answer changes neither the action's outcome, nor the time of its last change (the webhook's),
  nor its decision, and adds no audit entry.
* The answer is written under the action's row lock, so that a webhook settling the same action
  meanwhile waits for it instead of being lost (PostgreSQL; SQLite takes no row locks).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from sqlalchemy import select

from adapters.ledger_credit import STRIPE_BALANCE
from ledger.models import (
    AccountCredit,
    Action,
    ActionStatus,
    Decision,
    DecisionStatus,
    Payment,
    Refund,
)
from service.bootstrap import Container
from tests.support.ledger import add_in_order, audit_of, stored_action, stored_decision
from tests.support.locks import action_row_free_at_each_write
from workers import stripe_events
from workers.actions import (
    CREDIT_APPLICATION,
    confirm_refund,
    lock_refund_actions,
    run_action,
)
from workers.context import EventContext

MERCHANT = "theopenhost"
ACCOUNT = "cus_results"
CHARGE = "ch_results"
CAPTURE = "CAP-RESULTS"
SUBSCRIPTION = "sub_results"
NOW = datetime(2026, 10, 5, 12, tzinfo=UTC)
EARLIER = NOW - timedelta(days=1)
AMOUNT = 1000  # 10.00 USD, in cents
REASON = "partial_refund under 003 §1.7c"
REVIEW_ADVICE = "grant account credit or retry the refund"
STRIPE_REFUNDS = "https://api.stripe.com/v1/refunds"
STRIPE_SUBSCRIPTION = f"https://api.stripe.com/v1/subscriptions/{SUBSCRIPTION}"
STRIPE_BALANCE_URL = f"https://api.stripe.com/v1/customers/{ACCOUNT}/balance_transactions"
PAYPAL = "https://api-m.sandbox.paypal.com"


# --- Rows written straight into the ledger -----------------------------------------------------


def _stripe_charge() -> Payment:
    """A 50.00 USD Stripe charge, nothing refunded yet."""
    return Payment(merchant=MERCHANT, provider="stripe", provider_id=CHARGE,
                   version_at=EARLIER, version_event=f"evt_{CHARGE}", kind="charge",
                   status="succeeded", amount=5000, amount_refunded=0, currency="USD",
                   paid_at=EARLIER)


def _paypal_capture() -> Payment:
    """A 50.00 USD PayPal capture, nothing refunded yet."""
    return Payment(merchant=MERCHANT, provider="paypal", provider_id=CAPTURE,
                   version_at=EARLIER, version_event=f"WH-{CAPTURE}", kind="capture",
                   status="completed", amount=5000, currency="USD", paid_at=EARLIER)


def _decision(name: str, *, request_kind: str = "refund") -> Decision:
    return Decision(id=f"dec_{name}", merchant=MERCHANT, account_ref=ACCOUNT,
                    payment_ref=CHARGE, pack="p", request_kind=request_kind,
                    outcome="partial_refund", case={}, decision={}, evaluated_at=EARLIER,
                    status=DecisionStatus.RECORDED)


def _action(name: str, kind: str, *, decision: str, provider: str | None,
            target_kind: str | None, payment_ref: str | None, amount: int) -> Action:
    """A pending action ``act_<name>`` of ``dec_<decision>``, never tried."""
    return Action(id=f"act_{name}", decision_id=f"dec_{decision}", merchant=MERCHANT,
                  kind=kind, provider=provider, target_kind=target_kind,
                  payment_ref=payment_ref, account_ref=ACCOUNT, amount=amount, currency="USD",
                  clause="003 §1.7c", reason=REASON, status=ActionStatus.PENDING, attempts=0,
                  created_at=EARLIER, updated_at=EARLIER)


def _refund_action(name: str, *, decision: str | None = None, provider: str = "stripe"
                   ) -> Action:
    """A 10.00 USD refund of the Stripe charge (or of the PayPal capture)."""
    target_kind, payment_ref = (("charge", CHARGE) if provider == "stripe"
                                else ("capture", CAPTURE))
    return _action(name, "refund", decision=decision or name, provider=provider,
                   target_kind=target_kind, payment_ref=payment_ref, amount=AMOUNT)


def _cancel_action(name: str) -> Action:
    """A cancellation of the Stripe subscription at once (its decision names no date)."""
    return _action(name, "cancel", decision=name, provider="stripe",
                   target_kind="subscription", payment_ref=SUBSCRIPTION, amount=0)


def _credit_action(name: str, *, decision: str | None = None) -> Action:
    """A 5.00 USD credit to the Stripe customer."""
    return _action(name, "credit", decision=decision or name, provider=None, target_kind=None,
                   payment_ref=None, amount=500)


# --- The providers' answers --------------------------------------------------------------------


def _stripe_refund(refund_id: str, status: str, action_id: str) -> dict[str, Any]:
    """Stripe's refund object for a 10.00 USD refund of the charge that ``action_id`` asked
    for."""
    return {"id": refund_id, "object": "refund", "amount": AMOUNT, "charge": CHARGE,
            "currency": "usd", "status": status,
            "failure_reason": "expired_or_canceled_card" if status == "failed" else None,
            "created": int(NOW.timestamp()), "metadata": {"action_id": action_id}}


def _stripe_answers_refund(refund_id: str, status: str, action_id: str) -> None:
    responses.post(STRIPE_REFUNDS, json=_stripe_refund(refund_id, status, action_id))


def _paypal_answers_refund(refund_id: str, status: str, reason: str | None = None) -> None:
    responses.post(f"{PAYPAL}/v1/oauth2/token",
                   json={"access_token": "A21-token", "token_type": "Bearer",
                         "expires_in": 3600})
    responses.post(f"{PAYPAL}/v2/payments/captures/{CAPTURE}/refund",
                   json={"id": refund_id, "status": status,
                         "amount": {"value": "10.00", "currency_code": "USD"},
                         **({"status_details": {"reason": reason}} if reason else {})})


def _stripe_cancels_subscription() -> None:
    responses.delete(STRIPE_SUBSCRIPTION, json={"id": SUBSCRIPTION, "object": "subscription",
                                                "status": "canceled"})


def _stripe_credits_balance(transaction_id: str) -> None:
    responses.post(STRIPE_BALANCE_URL, json={"id": transaction_id,
                                             "object": "customer_balance_transaction",
                                             "amount": -500, "currency": "usd"})


def _stripe_webhook_reports(container: Container, refund_id: str, status: str,
                            action_id: str) -> None:
    """Stripe's refund.updated event for the refund, applied in a transaction of its own."""
    ctx = EventContext(merchant=MERCHANT, provider="stripe",
                       event_id=f"evt_{refund_id}_{status}", event_type="refund.updated",
                       created_at=NOW, livemode=False,
                       payload={"data": {"object": _stripe_refund(refund_id, status,
                                                                  action_id)}})
    with container.sessions() as session, session.begin():
        stripe_events.refund(session, ctx)


# --- Reading the ledger back -------------------------------------------------------------------


def _refunds(container: Container) -> list[Refund]:
    with container.sessions() as session:
        return list(session.scalars(select(Refund).order_by(Refund.provider_id)))


def _credits(container: Container) -> list[AccountCredit]:
    with container.sessions() as session:
        return list(session.scalars(select(AccountCredit).order_by(AccountCredit.id)))


def _reopened(why: str) -> str:
    return f"reopened: {why}; {REVIEW_ADVICE}"


# --- A credit on the Stripe customer balance ---------------------------------------------------


@responses.activate
def test_a_credit_stripe_holds_is_granted_in_the_ledger_as_held_by_stripe(container):
    add_in_order(container, _decision("credit"), _credit_action("credit"))
    _stripe_credits_balance("cbtxn_results")
    assert run_action(container, "act_credit", now=NOW) == ActionStatus.SUCCEEDED
    action = stored_action(container, "act_credit")
    assert (action.status, action.provider_ref, action.updated_at) == (
        ActionStatus.SUCCEEDED, "cbtxn_results", NOW)
    (entry,) = _credits(container)
    assert (entry.account_ref, entry.amount, entry.currency, entry.held_by) == (
        ACCOUNT, 500, "USD", STRIPE_BALANCE)
    assert (entry.action_id, entry.decision_id, entry.created_at) == (
        "act_credit", "dec_credit", NOW)
    assert stored_decision(container, "dec_credit").status == DecisionStatus.EXECUTED
    assert audit_of(container, "act_credit") == [(NOW, "action.succeeded", "worker")]
    assert _refunds(container) == []


# --- A cancellation ----------------------------------------------------------------------------


@responses.activate
def test_a_cancellation_answered_succeeds_and_executes_its_decision(container):
    add_in_order(container, _decision("cancel"), _cancel_action("cancel"))
    _stripe_cancels_subscription()
    assert run_action(container, "act_cancel", now=NOW) == ActionStatus.SUCCEEDED
    assert len(responses.calls) == 1
    action = stored_action(container, "act_cancel")
    assert (action.status, action.provider_ref, action.updated_at) == (
        ActionStatus.SUCCEEDED, SUBSCRIPTION, NOW)
    assert (action.failure_code, action.last_error) == (None, None)
    decision = stored_decision(container, "dec_cancel")
    assert (decision.status, decision.status_reason) == (DecisionStatus.EXECUTED, None)
    assert audit_of(container, "act_cancel") == [(NOW, "action.succeeded", "worker")]


@responses.activate
def test_a_cancellation_records_no_refund_and_no_credit(container):
    """Ending a subscription moves no money: the ledger's refunds and credits are untouched."""
    add_in_order(container, _decision("cancel"), _cancel_action("cancel"))
    _stripe_cancels_subscription()
    run_action(container, "act_cancel", now=NOW)
    assert _refunds(container) == []
    assert _credits(container) == []


@responses.activate
def test_a_cancellation_leaves_its_decision_recorded_while_another_action_is_to_do(container):
    add_in_order(container, _decision("cancel"), _cancel_action("cancel"),
                 _credit_action("later", decision="cancel"))
    _stripe_cancels_subscription()
    assert run_action(container, "act_cancel", now=NOW) == ActionStatus.SUCCEEDED
    assert stored_decision(container, "dec_cancel").status == DecisionStatus.RECORDED


# --- A refund answered -------------------------------------------------------------------------


@responses.activate
def test_a_refund_answered_made_succeeds_and_executes_its_decision(container):
    add_in_order(container, _stripe_charge(), _decision("made"), _refund_action("made"))
    _stripe_answers_refund("re_made", "succeeded", "act_made")
    assert run_action(container, "act_made", now=NOW) == ActionStatus.SUCCEEDED
    action = stored_action(container, "act_made")
    assert (action.status, action.provider_ref, action.updated_at) == (
        ActionStatus.SUCCEEDED, "re_made", NOW)
    decision = stored_decision(container, "dec_made")
    assert (decision.status, decision.status_reason) == (DecisionStatus.EXECUTED, None)
    assert audit_of(container, "act_made") == [(NOW, "action.succeeded", "worker")]


@responses.activate
@pytest.mark.parametrize("status", ["pending", "requires_action"])
def test_a_refund_answered_not_yet_made_is_submitted_and_executes_its_decision(container,
                                                                                 status):
    """Stripe accepted the refund: it is not asked for again, and its webhook settles it."""
    add_in_order(container, _stripe_charge(), _decision("waits"), _refund_action("waits"))
    _stripe_answers_refund("re_waits", status, "act_waits")
    assert run_action(container, "act_waits", now=NOW) == ActionStatus.SUBMITTED
    action = stored_action(container, "act_waits")
    assert (action.status, action.provider_ref, action.updated_at) == (
        ActionStatus.SUBMITTED, "re_waits", NOW)
    decision = stored_decision(container, "dec_waits")
    assert (decision.status, decision.status_reason) == (DecisionStatus.EXECUTED, None)
    assert audit_of(container, "act_waits") == [(NOW, "action.submitted", "worker")]


@responses.activate
@pytest.mark.parametrize(("status", "done"), [("succeeded", ActionStatus.SUCCEEDED),
                                              ("pending", ActionStatus.SUBMITTED)])
def test_a_refund_answered_leaves_its_decision_recorded_while_another_action_is_to_do(
        container, status, done):
    add_in_order(container, _stripe_charge(), _decision("both"), _refund_action("both"),
                 _credit_action("both_credit", decision="both"))
    _stripe_answers_refund("re_both", status, "act_both")
    assert run_action(container, "act_both", now=NOW) == done
    assert stored_decision(container, "dec_both").status == DecisionStatus.RECORDED


@responses.activate
@pytest.mark.parametrize("status", ["succeeded", "pending", "failed"])
def test_a_refund_answered_is_recorded_as_our_refund_dated_when_the_worker_ran(container,
                                                                               status):
    add_in_order(container, _stripe_charge(), _decision("row"), _refund_action("row"))
    _stripe_answers_refund("re_row", status, "act_row")
    run_action(container, "act_row", now=NOW)
    (refund,) = _refunds(container)
    assert (refund.merchant, refund.provider, refund.provider_id, refund.payment_ref) == (
        MERCHANT, "stripe", "re_row", CHARGE)
    assert (refund.status, refund.amount, refund.currency) == (status, AMOUNT, "USD")
    assert (refund.refunded_at, refund.reason) == (NOW, REASON)
    assert (refund.action_id, refund.unsolicited) == ("act_row", False)


@responses.activate
@pytest.mark.parametrize("status", ["failed", "canceled"])
def test_a_refund_answered_not_made_fails_and_reopens_its_decision_naming_the_refund(
        container, status):
    add_in_order(container, _stripe_charge(), _decision("lost"), _refund_action("lost"))
    _stripe_answers_refund("re_lost", status, "act_lost")
    assert run_action(container, "act_lost", now=NOW) == ActionStatus.FAILED
    action = stored_action(container, "act_lost")
    assert (action.status, action.provider_ref, action.updated_at) == (
        ActionStatus.FAILED, "re_lost", NOW)
    why = f"refund re_lost {status}: " + (
        "expired_or_canceled_card" if status == "failed" else "no reason given")
    assert (action.failure_code, action.last_error) == ("refund_failed", why)
    (refund,) = _refunds(container)
    assert refund.failure_reason == (
        "expired_or_canceled_card" if status == "failed" else None)
    decision = stored_decision(container, "dec_lost")
    assert decision.status == DecisionStatus.NEEDS_REVIEW
    assert decision.status_reason == _reopened(f"the provider reported {why}")
    assert audit_of(container, "act_lost") == [(NOW, "action.failed", "worker")]


@responses.activate
@pytest.mark.parametrize("status", ["CANCELLED", "FAILED"])
def test_a_paypal_refund_answered_not_made_is_named_with_paypals_own_status(container, status):
    add_in_order(container, _paypal_capture(), _decision("pp_lost"),
                 _refund_action("pp_lost", provider="paypal"))
    _paypal_answers_refund("PPRF-LOST", status, reason="ECHECK")
    assert run_action(container, "act_pp_lost", now=NOW) == ActionStatus.FAILED
    decision = stored_decision(container, "dec_pp_lost")
    assert (decision.status, decision.status_reason) == (
        DecisionStatus.NEEDS_REVIEW,
        _reopened(f"the provider reported refund PPRF-LOST {status}: ECHECK"))
    (refund,) = _refunds(container)
    assert (refund.provider, refund.provider_id, refund.status, refund.failure_reason) == (
        "paypal", "PPRF-LOST", status.lower(), "ECHECK")


@responses.activate
def test_a_paypal_refund_answered_completed_succeeds(container):
    add_in_order(container, _paypal_capture(), _decision("pp_made"),
                 _refund_action("pp_made", provider="paypal"))
    _paypal_answers_refund("PPRF-MADE", "COMPLETED")
    assert run_action(container, "act_pp_made", now=NOW) == ActionStatus.SUCCEEDED
    action = stored_action(container, "act_pp_made")
    assert (action.provider_ref, action.updated_at) == ("PPRF-MADE", NOW)
    assert stored_decision(container, "dec_pp_made").status == DecisionStatus.EXECUTED


@responses.activate
def test_a_refund_answered_not_made_closes_a_credit_application_with_the_credit_back(
        container):
    add_in_order(container, _stripe_charge(),
                 _decision("applied", request_kind=CREDIT_APPLICATION),
                 _refund_action("applied"))
    _stripe_answers_refund("re_applied", "failed", "act_applied")
    assert run_action(container, "act_applied", now=NOW) == ActionStatus.FAILED
    decision = stored_decision(container, "dec_applied")
    assert (decision.status, decision.status_reason) == (
        DecisionStatus.CLOSED,
        "refund not made: the provider reported refund re_applied failed: "
        "expired_or_canceled_card; the credit is back on the account for its next payment")


# --- A refund its webhook settled while the call was out ---------------------------------------


def _webhook_then_answer(container: Container, webhook_status: str, answer_status: str) -> None:
    """Stripe makes the refund (or fails it), its webhook is applied while our call is still
    out, and then the call's answer arrives saying ``answer_status``."""

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        _stripe_webhook_reports(container, "re_first", webhook_status, "act_first")
        return 200, {}, json.dumps(_stripe_refund("re_first", answer_status, "act_first"))

    responses.add_callback(responses.POST, STRIPE_REFUNDS, callback=answer)


@responses.activate
@pytest.mark.parametrize("answer_status", ["pending", "failed"])
def test_a_refund_its_webhook_reported_made_first_stays_made_whatever_the_answer_says(
        container, answer_status):
    add_in_order(container, _stripe_charge(), _decision("first"), _refund_action("first"))
    _webhook_then_answer(container, "succeeded", answer_status)
    assert run_action(container, "act_first", now=NOW) == ActionStatus.SUCCEEDED
    action = stored_action(container, "act_first")
    assert (action.status, action.provider_ref) == (ActionStatus.SUCCEEDED, "re_first")
    ((at, _, _),) = audit_of(container, "act_first")
    assert action.updated_at == at > NOW  # the webhook's time, not the worker's earlier one
    decision = stored_decision(container, "dec_first")
    assert (decision.status, decision.status_reason) == (DecisionStatus.EXECUTED, None)
    assert [(what, who) for _, what, who in audit_of(container, "act_first")] == [
        ("action.succeeded", "stripe webhook")]


@responses.activate
@pytest.mark.parametrize("answer_status", ["pending", "succeeded"])
def test_a_refund_its_webhook_reported_failed_first_stays_failed_whatever_the_answer_says(
        container, answer_status):
    add_in_order(container, _stripe_charge(), _decision("first"), _refund_action("first"))
    _webhook_then_answer(container, "failed", answer_status)
    assert run_action(container, "act_first", now=NOW) == ActionStatus.FAILED
    action = stored_action(container, "act_first")
    assert (action.status, action.provider_ref, action.failure_code) == (
        ActionStatus.FAILED, "re_first", "refund_failed")
    ((at, _, _),) = audit_of(container, "act_first")
    assert action.updated_at == at > NOW  # the webhook's time, not the worker's earlier one
    decision = stored_decision(container, "dec_first")
    assert (decision.status, decision.status_reason) == (
        DecisionStatus.NEEDS_REVIEW,
        _reopened("refund re_first failed: expired_or_canceled_card"))
    assert [(what, who) for _, what, who in audit_of(container, "act_first")] == [
        ("action.failed", "stripe webhook")]


# --- Written under the action's row lock -------------------------------------------------------


@responses.activate
@pytest.mark.parametrize("status", ["succeeded", "pending", "failed"])
def test_a_refunds_answer_is_written_under_the_actions_row_lock(postgres, status):
    add_in_order(postgres, _stripe_charge(), _decision("locked"), _refund_action("locked"))
    _stripe_answers_refund("re_locked", status, "act_locked")
    with action_row_free_at_each_write(postgres, "act_locked") as seen:
        run_action(postgres, "act_locked", now=NOW)
    assert len(seen) >= 2  # marked executing, then the answer recorded
    assert not any(seen)


# --- When a decision counts as executed --------------------------------------------------------


def _with_status(action: Action, status: str, at: datetime = EARLIER) -> Action:
    action.status, action.updated_at = status, at
    return action


@responses.activate
def test_a_decision_whose_refund_is_submitted_and_credit_granted_is_executed(container):
    """Every action done (one accepted and waiting for its webhook, one made): executed."""
    add_in_order(container, _stripe_charge(), _decision("mixed"), _refund_action("mixed"),
                 _with_status(_credit_action("mixed_credit", decision="mixed"),
                              ActionStatus.SUCCEEDED))
    _stripe_answers_refund("re_mixed", "pending", "act_mixed")
    assert run_action(container, "act_mixed", now=NOW) == ActionStatus.SUBMITTED
    assert stored_decision(container, "dec_mixed").status == DecisionStatus.EXECUTED


@responses.activate
def test_a_decision_in_front_of_a_reviewer_stays_there_when_its_refund_is_made(container):
    """Only a recorded decision becomes executed: one reopened for review (or closed) waits
    for the reviewer whatever its actions do afterwards."""
    decision = _decision("held")
    decision.status, decision.status_reason = DecisionStatus.NEEDS_REVIEW, "held for a person"
    add_in_order(container, _stripe_charge(), decision, _refund_action("held"))
    _stripe_answers_refund("re_held", "succeeded", "act_held")
    assert run_action(container, "act_held", now=NOW) == ActionStatus.SUCCEEDED
    stored = stored_decision(container, "dec_held")
    assert (stored.status, stored.status_reason) == (DecisionStatus.NEEDS_REVIEW,
                                                     "held for a person")


@responses.activate
@pytest.mark.parametrize(("failed_at", "executed"), [
    (EARLIER, True), (EARLIER + timedelta(hours=1), True),
    (EARLIER + timedelta(hours=1, microseconds=1), False)],
    ids=["before the answer", "at the answer", "after the answer"])
def test_a_failure_a_reviewer_answered_no_longer_holds_the_decision_back(container, failed_at,
                                                                          executed):
    """A reviewer answered at EARLIER + 1 h (the actions they approved then carry it out): a
    failure up to that moment is answered; one after it is news to them."""
    decision = _decision("answered")
    decision.reviewed_at = EARLIER + timedelta(hours=1)
    add_in_order(container, _stripe_charge(), decision,
                 _with_status(_refund_action("answered_first", decision="answered"),
                              ActionStatus.FAILED, failed_at),
                 _refund_action("answered"))
    _stripe_answers_refund("re_answered", "succeeded", "act_answered")
    assert run_action(container, "act_answered", now=NOW) == ActionStatus.SUCCEEDED
    assert (stored_decision(container, "dec_answered").status == DecisionStatus.EXECUTED) \
        is executed


def test_a_decision_is_executed_by_the_last_of_its_actions_done_in_one_transaction(container):
    """Its credit granted and its refund confirmed in the same transaction (a drain batch that
    locked its refunds' actions up front, so confirming asks the database nothing), the credit
    not written yet when the refund asks whether all are done: the decision is executed."""
    add_in_order(container, _stripe_charge(), _decision("together"),
                 _with_status(_refund_action("together"), ActionStatus.SUBMITTED),
                 _credit_action("together_credit", decision="together"))
    with container.sessions() as session, session.begin():
        lock_refund_actions(session, [(MERCHANT, "act_together", "re_together")])
        held = session.get(Decision, "dec_together")  # read before, and held since
        assert held is not None
        credit = session.get(Action, "act_together_credit")
        assert credit is not None
        credit.status = ActionStatus.SUCCEEDED
        refund = Refund(merchant=MERCHANT, provider="stripe", provider_id="re_together",
                        version_at=NOW, version_event="evt_re_together", payment_ref=CHARGE,
                        status="succeeded", amount=AMOUNT, currency="USD", refunded_at=NOW,
                        action_id="act_together")
        session.add(refund)
        confirm_refund(session, refund)
    assert stored_decision(container, "dec_together").status == DecisionStatus.EXECUTED


@responses.activate
@pytest.mark.parametrize(("clause", "sent"), [("003 §1.7c", "003 §1.7c"), (None, "")])
def test_a_refund_tells_stripe_its_decision_and_clause_and_no_made_up_clause(container, clause,
                                                                            sent):
    """The refund carries our action, decision and clause in Stripe's metadata, where finance
    reads them on Stripe's side; an action no clause holds for sends an empty one."""
    action = _refund_action("meta")
    action.clause = clause
    add_in_order(container, _stripe_charge(), _decision("meta"), action)
    _stripe_answers_refund("re_meta", "succeeded", "act_meta")
    run_action(container, "act_meta", now=NOW)
    (call,) = responses.calls
    body = parse_qs(str(call.request.body), keep_blank_values=True)
    assert body["metadata[action_id]"] == ["act_meta"]
    assert body["metadata[decision_id]"] == ["dec_meta"]
    assert body["metadata[clause]"] == [sent]
