"""Planning and carrying out a decision's actions, pinned field by field.

* Which actions the sweeper hands out again (``due_actions``): a pending action once its retry
  time (if any) has come and it has been left alone for the stale time, an executing one only
  when its worker has gone quiet that long, never a finished one; both bounds are inclusive,
  and one sweep hands out at most a thousand, those left alone longest first.
* The action a recorded cancellation adds: a zero-amount ``cancel`` of the subscription, with
  the account, currency, clause and reason of its decision; a PayPal one waits until its
  effective date (PayPal can only cancel "now"), a Stripe one does not, and neither does a
  PayPal one whose date has come.
* A credit carried out: the ledger entry it writes (amount, currency, reason, clause, decision,
  action, who holds it, with the Stripe balance transaction named when Stripe holds it) and the
  action succeeded at that time, its decision executed, and the change in the audit log.
* A refund refused before its first provider call: the action failed with the reason, and its
  decision back in review saying the refund was not made and why.
* Each action is queued as one RQ job named by it, keeping no result, a failure kept a day.
* Each change of an action is audited: the worker, the kind, the decision, the provider's id
  for what it made, or its refusal's code.
* A recorded decision: its id, the request or event it answers, its audit entry (the policy,
  at the decision's time, its outcome, status, source and actions); a refund with no clause to
  cite is made "under the policy".
* A credit in a currency money cannot be paid in is refused, planning nothing; no credit plans
  nothing whatever its currency; a refund or credit of one minor unit is planned; a refund
  without its payment, or a credit without an account, is a programming error.
* The lines an action logs name its merchant, its decision and what the decision came from (a
  webhook's inbox row and event id, or a support request's id).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
import responses
from rq.job import Job
from sqlalchemy import select

from adapters.ledger_credit import LEDGER, STRIPE_BALANCE
from ledger.models import (
    AccountCredit,
    Action,
    ActionStatus,
    AuditEntry,
    Decision,
    DecisionStatus,
    InboxEvent,
    Payment,
    Refund,
    Subscription,
)
from policy import Decision as PolicyDecision
from policy.decision import Outcome, Reason
from policy.money import Money
from service.bootstrap import Container
from tests.support.ledger import add_in_order, audit_of, stored_action, stored_decision
from workers.actions import (
    ActionRefused,
    due_actions,
    enqueue,
    plan_actions,
    record_decision,
    run_action,
)

MERCHANT = "theopenhost"
ACCOUNT = "cus_actions"
NOW = datetime(2026, 10, 5, 12, tzinfo=UTC)
STALE = timedelta(minutes=5)
TICK = timedelta(microseconds=1)
LONG_AGO = NOW - timedelta(days=1)
ACTION_ID = re.compile(r"act_[0-9a-f]{32}")
STRIPE_BALANCE_URL = f"https://api.stripe.com/v1/customers/{ACCOUNT}/balance_transactions"


# --- Rows written straight into the ledger -----------------------------------------------------


def _decision(name: str, *, account: str = ACCOUNT, payment_ref: str | None = None,
              request_kind: str = "refund") -> Decision:
    return Decision(id=f"dec_{name}", merchant=MERCHANT, account_ref=account,
                    payment_ref=payment_ref, pack="p", request_kind=request_kind,
                    outcome="partial_refund", case={}, decision={}, evaluated_at=LONG_AGO,
                    status=DecisionStatus.RECORDED)


def _action(name: str, status: str = ActionStatus.PENDING, *, decision: str = "sweep",
            kind: str = "refund", account: str = ACCOUNT, payment_ref: str | None = "ch_1",
            amount: int = 1000, updated_at: datetime = LONG_AGO,
            next_attempt_at: datetime | None = None) -> Action:
    return Action(id=f"act_{name}", decision_id=f"dec_{decision}", merchant=MERCHANT,
                  kind=kind, provider="stripe" if kind == "refund" else None,
                  target_kind="charge" if kind == "refund" else None, payment_ref=payment_ref,
                  account_ref=account, amount=amount, currency="USD", clause="003 §1.7c",
                  reason="partial_refund under 003 §1.7c", status=status,
                  next_attempt_at=next_attempt_at, created_at=LONG_AGO, updated_at=updated_at)


def _charge(charge: str, *, refunded: int = 0) -> Payment:
    """A 50.00 USD Stripe charge captured long ago, ``refunded`` of it refunded."""
    return Payment(merchant=MERCHANT, provider="stripe", provider_id=charge,
                   version_at=LONG_AGO, version_event=f"evt_{charge}", kind="charge",
                   status="succeeded", amount=5000, amount_refunded=refunded, currency="USD",
                   paid_at=LONG_AGO)


def _due(container: Container, now: datetime = NOW, stale_after: timedelta = STALE
         ) -> list[str]:
    with container.sessions() as session:
        return due_actions(session, now, stale_after)


def _credit_entries(container: Container) -> list[AccountCredit]:
    with container.sessions() as session:
        return list(session.scalars(select(AccountCredit).order_by(AccountCredit.id)))


# --- Which actions a sweep hands out -----------------------------------------------------------


def test_a_pending_action_is_handed_out_once_left_alone_for_exactly_the_stale_time(container):
    add_in_order(container, _decision("sweep"),
                 _action("left_exactly", updated_at=NOW - STALE),
                 _action("left_longer", updated_at=NOW - STALE - timedelta(hours=1)),
                 _action("just_touched", updated_at=NOW - STALE + TICK),
                 _action("touched_now", updated_at=NOW))
    assert sorted(_due(container)) == ["act_left_exactly", "act_left_longer"]


def test_a_pending_retry_is_handed_out_when_its_time_comes_and_not_before(container):
    add_in_order(container, _decision("sweep"),
                 _action("never_scheduled"),
                 _action("due_exactly_now", next_attempt_at=NOW),
                 _action("due_earlier", next_attempt_at=NOW - timedelta(minutes=1)),
                 _action("due_a_moment_later", next_attempt_at=NOW + TICK),
                 _action("due_tomorrow", next_attempt_at=NOW + timedelta(days=1)))
    assert sorted(_due(container)) == ["act_due_earlier", "act_due_exactly_now",
                                       "act_never_scheduled"]


def test_a_due_retry_still_waits_out_the_stale_time_since_it_was_last_touched(container):
    add_in_order(container, _decision("sweep"),
                 _action("due_but_fresh", next_attempt_at=NOW - timedelta(hours=1),
                         updated_at=NOW - STALE + TICK),
                 _action("due_and_stale", next_attempt_at=NOW - timedelta(hours=1),
                         updated_at=NOW - STALE))
    assert _due(container) == ["act_due_and_stale"]


def test_an_executing_action_is_handed_out_only_when_its_worker_went_quiet(container):
    add_in_order(container, _decision("sweep"),
                 _action("quiet_exactly", ActionStatus.EXECUTING, updated_at=NOW - STALE),
                 _action("quiet_long", ActionStatus.EXECUTING, updated_at=LONG_AGO),
                 _action("still_working", ActionStatus.EXECUTING,
                         updated_at=NOW - STALE + TICK),
                 _action("started_now", ActionStatus.EXECUTING, updated_at=NOW))
    assert sorted(_due(container)) == ["act_quiet_exactly", "act_quiet_long"]


@pytest.mark.parametrize("status", [ActionStatus.SUBMITTED, ActionStatus.SUCCEEDED,
                                    ActionStatus.FAILED])
def test_a_finished_action_is_never_handed_out_however_old(container, status):
    add_in_order(container, _decision("sweep"),
                 _action("finished", status, updated_at=LONG_AGO),
                 _action("finished_retry_time", status, updated_at=LONG_AGO,
                         next_attempt_at=LONG_AGO),
                 _action("waiting", updated_at=LONG_AGO))
    assert _due(container) == ["act_waiting"]


def test_with_nothing_waiting_a_sweep_hands_out_nothing(container):
    add_in_order(container, _decision("sweep"),
                 _action("done", ActionStatus.SUCCEEDED),
                 _action("fresh", updated_at=NOW))
    assert _due(container) == []


def test_one_sweep_hands_out_at_most_a_thousand_actions_those_left_longest_first(container):
    """A backlog over the limit cannot keep an action waiting sweep after sweep: the ones left
    alone longest go first (the newest here is added first, so insertion order would differ)."""
    newest = _action("many_newest", updated_at=LONG_AGO + timedelta(seconds=1))
    waiting = [_action(f"many_{n:04d}") for n in range(1000)]
    with container.sessions() as session, session.begin():
        session.add(_decision("sweep"))
        session.flush()
        session.add(newest)
        session.flush()
        session.add_all(waiting)
    handed = _due(container)
    assert len(handed) == 1000
    assert handed == sorted(a.id for a in waiting)


# --- The action a recorded cancellation adds ---------------------------------------------------


def _cancellation(outcome: Outcome = Outcome.CANCEL_AT_PERIOD_END, *,
                  effective_at: datetime | None, clause: str | None = "003 §1.2"
                  ) -> PolicyDecision:
    """A cancellation decided at NOW in USD, moving no money; ``clause`` is the one it rests on,
    and holds (None: none)."""
    reasons = [Reason("003 §1.2c", "no invoice is due", False, "")]
    if clause is not None:
        reasons.append(Reason(clause, "notice given in time", True, ""))
    zero = Money(0, "USD")
    return PolicyDecision(
        pack="theopenhost", request_kind="cancellation", outcome=outcome, decided_at=NOW,
        currency="USD", at_stake=None, refund=zero, credit=zero, fee=zero, charge=zero,
        retained=zero, proposed_refund=None, line_items=(), effective_at=effective_at,
        access_until=effective_at, balance_due_by=None, notice_by=None, flags=(),
        reasons=tuple(reasons), basis=clause)


def _subscription(provider: str) -> Subscription:
    return Subscription(merchant=MERCHANT, provider=provider, provider_id=f"sub_{provider}_1",
                        version_at=LONG_AGO, version_event="evt_sub", status="active",
                        customer_ref=ACCOUNT, currency="USD")


def _record_cancellation(container: Container, provider: str, decision: PolicyDecision
                         ) -> tuple[str, Action]:
    """Record ``decision`` about the ``provider`` subscription at NOW; its id and its action."""
    with container.sessions() as session, session.begin():
        subscription = _subscription(provider)
        session.add(subscription)
        session.flush()
        row = record_decision(session, merchant=MERCHANT, decision=decision,
                              case={"kind": "cancellation"}, account_ref=ACCOUNT, payment=None,
                              now=NOW, subscription=subscription)
        decision_id = row.id
    with container.sessions() as session:
        (action,) = session.scalars(select(Action).where(Action.decision_id == decision_id))
    return decision_id, action


def test_a_stripe_cancellation_is_a_zero_amount_cancel_of_the_subscription_sent_at_once(
        container):
    """Stripe takes the end date in the call: the action is due now, whatever the date."""
    effective = NOW + timedelta(days=20)
    decision_id, action = _record_cancellation(container, "stripe",
                                               _cancellation(effective_at=effective))
    assert ACTION_ID.fullmatch(action.id)
    assert (action.decision_id, action.merchant, action.kind) == (decision_id, MERCHANT,
                                                                  "cancel")
    assert (action.provider, action.target_kind, action.payment_ref) == (
        "stripe", "subscription", "sub_stripe_1")
    assert (action.account_ref, action.amount, action.currency) == (ACCOUNT, 0, "USD")
    assert (action.clause, action.reason) == ("003 §1.2", "cancel_at_period_end under 003 §1.2")
    assert (action.status, action.attempts, action.next_attempt_at) == (
        ActionStatus.PENDING, 0, None)
    assert (action.created_at, action.updated_at) == (NOW, NOW)
    assert stored_decision(container, decision_id).status == DecisionStatus.RECORDED


def test_a_paypal_cancellation_waits_until_its_effective_date(container):
    """PayPal can only cancel now: the action is held until the date, and only then handed
    out again."""
    effective = NOW + timedelta(days=20)
    _, action = _record_cancellation(container, "paypal", _cancellation(effective_at=effective))
    assert (action.provider, action.target_kind, action.payment_ref) == (
        "paypal", "subscription", "sub_paypal_1")
    assert (action.amount, action.currency, action.account_ref) == (0, "USD", ACCOUNT)
    assert action.next_attempt_at == effective
    assert _due(container, NOW + STALE) == []
    assert _due(container, effective - TICK) == []
    assert _due(container, effective) == [action.id]


@pytest.mark.parametrize("effective", [NOW, NOW - timedelta(days=2)],
                         ids=["effective now", "effective already"])
def test_a_paypal_cancellation_whose_date_has_come_does_not_wait(container, effective):
    _, action = _record_cancellation(container, "paypal",
                                     _cancellation(Outcome.CANCEL_IMMEDIATELY,
                                                   effective_at=effective))
    assert action.next_attempt_at is None
    assert action.reason == "cancel_immediately under 003 §1.2"


def test_a_paypal_cancellation_with_no_date_does_not_wait(container):
    _, action = _record_cancellation(container, "paypal",
                                     _cancellation(Outcome.CANCEL_IMMEDIATELY,
                                                   effective_at=None))
    assert action.next_attempt_at is None


def test_a_cancellation_no_clause_holds_for_is_made_under_the_policy(container):
    _, action = _record_cancellation(container, "stripe",
                                     _cancellation(Outcome.CANCEL_NEXT_PERIOD,
                                                   effective_at=NOW + timedelta(days=40),
                                                   clause=None))
    assert action.clause is None
    assert action.reason == "cancel_next_period under the policy"
    assert (action.kind, action.target_kind, action.amount) == ("cancel", "subscription", 0)


def _stripe_subscription_answer(request: object) -> tuple[int, dict[str, str], str]:
    return 200, {}, json.dumps({"id": "sub_stripe_1", "object": "subscription",
                                "status": "active"})


@responses.activate
@pytest.mark.parametrize(("run_at", "sent"), [
    (NOW, "cancel_at"), (NOW + timedelta(days=20), "now"), (NOW + timedelta(days=21), "now")],
    ids=["before its date", "on its date", "after its date"])
def test_a_stripe_cancellation_is_sent_with_its_date_while_the_date_is_to_come(
        container, run_at, sent):
    """Judged by the clock the action runs on: before the effective date Stripe is given the
    date (``cancel_at``); from then on the subscription is cancelled now."""
    effective = NOW + timedelta(days=20)
    url = "https://api.stripe.com/v1/subscriptions/sub_stripe_1"
    responses.add_callback(responses.POST, url, callback=_stripe_subscription_answer)
    responses.add_callback(responses.DELETE, url, callback=_stripe_subscription_answer)
    _, action = _record_cancellation(container, "stripe", _cancellation(effective_at=effective))
    assert run_action(container, action.id, now=run_at) == ActionStatus.SUCCEEDED
    (call,) = responses.calls
    if sent == "cancel_at":
        assert call.request.method == "POST"
        assert parse_qs(str(call.request.body))["cancel_at"] == [str(int(effective.timestamp()))]
    else:
        assert call.request.method == "DELETE"


# --- A credit carried out ----------------------------------------------------------------------


def _pending_credit(container: Container, account: str, amount: int = 950) -> Action:
    credit = _action("credit", decision="credit", kind="credit", account=account,
                     payment_ref=None, amount=amount)
    add_in_order(container, _decision("credit", account=account), credit)
    return credit


def test_credit_kept_in_the_ledger_is_one_entry_naming_its_clause_decision_and_action(
        container):
    """An account that is no Stripe customer: the ledger holds the credit; nothing is sent."""
    credit = _pending_credit(container, "acct_kept_here")
    at = NOW + timedelta(minutes=3)
    assert run_action(container, credit.id, now=at) == ActionStatus.SUCCEEDED
    (entry,) = _credit_entries(container)
    assert (entry.merchant, entry.account_ref, entry.amount, entry.currency) == (
        MERCHANT, "acct_kept_here", 950, "USD")
    assert (entry.reason, entry.clause) == ("partial_refund under 003 §1.7c", "003 §1.7c")
    assert (entry.decision_id, entry.action_id, entry.held_by) == (
        "dec_credit", credit.id, LEDGER)
    assert (entry.created_at, entry.applies_to, entry.applied_to) == (at, None, None)
    done = stored_action(container, credit.id)
    assert (done.status, done.updated_at, done.provider_ref) == (ActionStatus.SUCCEEDED, at,
                                                                  None)
    assert stored_decision(container, "dec_credit").status == DecisionStatus.EXECUTED
    assert audit_of(container, credit.id) == [(at, "action.succeeded", "worker")]


@responses.activate
def test_credit_on_the_stripe_customer_balance_is_entered_as_held_by_stripe_naming_it(
        container):
    """A Stripe customer's credit is a balance transaction at Stripe; the ledger keeps the
    grant too, held by Stripe, its reason naming the transaction."""
    responses.post(STRIPE_BALANCE_URL, json={"id": "cbtxn_1", "object":
                                             "customer_balance_transaction",
                                             "amount": -950, "currency": "usd"})
    credit = _pending_credit(container, ACCOUNT)
    at = NOW + timedelta(minutes=3)
    assert run_action(container, credit.id, now=at) == ActionStatus.SUCCEEDED
    assert len(responses.calls) == 1
    (entry,) = _credit_entries(container)
    assert (entry.account_ref, entry.amount, entry.currency, entry.clause) == (
        ACCOUNT, 950, "USD", "003 §1.7c")
    assert entry.reason == ("partial_refund under 003 §1.7c; held on the Stripe customer "
                            "balance as cbtxn_1")
    assert (entry.decision_id, entry.action_id, entry.held_by) == (
        "dec_credit", credit.id, STRIPE_BALANCE)
    assert entry.created_at == at
    done = stored_action(container, credit.id)
    assert (done.status, done.updated_at, done.provider_ref) == (ActionStatus.SUCCEEDED, at,
                                                                  "cbtxn_1")
    assert stored_decision(container, "dec_credit").status == DecisionStatus.EXECUTED
    assert (at, "action.succeeded", "worker") in audit_of(container, credit.id)


# --- A refund refused before its first provider call -------------------------------------------


def _refunded_payment(charge: str) -> list[object]:
    """A 50.00 USD charge and a refund of all of it made elsewhere (from the dashboard, say)."""
    return [_charge(charge, refunded=5000),
            Refund(merchant=MERCHANT, provider="stripe", provider_id="re_dashboard",
                   version_at=LONG_AGO, version_event="evt_re_dashboard", payment_ref=charge,
                   status="succeeded", amount=5000, currency="USD", refunded_at=LONG_AGO)]


@responses.activate
@pytest.mark.parametrize(("held", "code"), [(False, "unknown_payment"),
                                            (True, "exceeds_remainder")],
                         ids=["payment not in the ledger", "refunded elsewhere since"])
def test_a_refund_refused_before_the_call_fails_and_reopens_its_decision_saying_why(
        container, held, code):
    charge = "ch_refused"
    rows = _refunded_payment(charge) if held else []
    refund = _action("refused", decision="refused", payment_ref=charge)
    add_in_order(container, *rows, _decision("refused", payment_ref=charge), refund)
    at = NOW + timedelta(minutes=7)
    assert run_action(container, refund.id, now=at) == ActionStatus.FAILED
    assert not responses.calls  # the provider was never asked
    failed = stored_action(container, refund.id)
    assert (failed.status, failed.failure_code, failed.updated_at, failed.attempts) == (
        ActionStatus.FAILED, code, at, 0)
    assert failed.last_error == (
        f"payment {charge} is not in the ledger" if not held
        else f"10.00 USD is more than is left to refund of payment {charge}: 0.00 USD of 50.00 "
             "USD (50.00 USD refunded, in flight or pending)")
    decision = stored_decision(container, "dec_refused")
    assert decision.status == DecisionStatus.NEEDS_REVIEW
    assert decision.status_reason == (f"reopened: refund not made: {failed.last_error}; "
                                      "grant account credit or retry the refund")
    assert audit_of(container, refund.id) == [(at, "action.failed", "worker")]


@responses.activate
def test_a_retried_refund_is_not_checked_again_against_what_is_left(container):
    """Its first attempt was checked and its amount has counted as in flight since; it may
    already have landed (the provider's answer lost), so the retry goes to the provider under
    the same key, which answers with the refund it made, rather than being refused because the
    payment now looks refunded."""
    charge = "ch_retried"
    refund = _action("retried", decision="retried", payment_ref=charge)
    refund.attempts = 1  # tried once; a 500 put it back to pending
    add_in_order(container, *_refunded_payment(charge), _decision("retried", payment_ref=charge),
                 refund)
    responses.post("https://api.stripe.com/v1/refunds", json={
        "id": "re_retried", "object": "refund", "amount": 1000, "charge": charge,
        "currency": "usd", "status": "succeeded", "metadata": {"action_id": refund.id}})
    assert run_action(container, refund.id, now=NOW) == ActionStatus.SUCCEEDED
    (call,) = responses.calls
    assert call.request.headers["Idempotency-Key"] == refund.id


def test_an_action_the_ledger_does_not_hold_is_missing_and_nothing_is_written(container):
    assert run_action(container, "act_nobody", now=NOW) == "missing"
    with container.sessions() as session:
        assert session.scalars(select(Action)).all() == []


@responses.activate
def test_an_action_already_done_is_never_carried_out_again(container):
    """A copy of the job handed out again (the sweeper, a retry) after the action succeeded
    answers its status and asks the provider nothing."""
    done = _action("done_once", ActionStatus.SUCCEEDED)
    add_in_order(container, _decision("sweep"), done)
    assert run_action(container, done.id, now=NOW) == ActionStatus.SUCCEEDED
    assert not responses.calls
    assert audit_of(container, done.id) == []


@responses.activate
def test_every_line_logged_while_an_action_runs_names_it(container, log_lines):
    """Here the retry's warning after Stripe answered 500: support finds the action's story by
    its id."""
    charge = "ch_logged"
    add_in_order(container, _charge(charge), _decision("logged", payment_ref=charge),
                 _action("logged", decision="logged", payment_ref=charge))
    responses.post("https://api.stripe.com/v1/refunds", status=500,
                   json={"error": {"type": "api_error", "message": "try again"}})
    assert run_action(container, "act_logged", now=NOW) == ActionStatus.PENDING
    mine = [line for line in log_lines() if line["logger"] == "workers.actions"]
    assert mine and all(line["action_id"] == "act_logged" for line in mine)


@pytest.mark.parametrize("source", ["event", "request"])
@responses.activate
def test_an_actions_lines_name_its_merchant_decision_and_what_the_decision_came_from(
        container, log_lines, source):
    """The decision came from a webhook (its inbox row and the provider's event id) or from a
    support request (its id): the action's lines say which, beside the merchant and the
    decision, and name nothing they do not know."""
    charge = f"ch_from_{source}"
    decision = _decision(f"from_{source}", payment_ref=charge)
    extra: list[object] = []
    if source == "event":
        inbox = InboxEvent(merchant=MERCHANT, provider="stripe", event_id="evt_source_of_it",
                           event_type="charge.succeeded", partition=0, livemode=False,
                           raw_body=b"{}", headers={}, received_at=LONG_AGO)
        extra.append(inbox)
    else:
        decision.source_request_id = "req_source_of_it"
    add_in_order(container, _charge(charge), *extra)
    if source == "event":
        with container.sessions() as session, session.begin():
            inbox_id = session.scalar(select(InboxEvent.id))
        decision.source_event_id = inbox_id
    add_in_order(container, decision,
                 _action(f"from_{source}", decision=f"from_{source}", payment_ref=charge))
    responses.post("https://api.stripe.com/v1/refunds", status=500,
                   json={"error": {"type": "api_error", "message": "try again"}})
    assert run_action(container, f"act_from_{source}", now=NOW) == ActionStatus.PENDING
    mine = [line for line in log_lines() if line["logger"] == "workers.actions"]
    assert mine
    for line in mine:
        assert (line["merchant"], line["decision_id"]) == (MERCHANT, f"dec_from_{source}")
        if source == "event":
            assert (line["inbox_id"], line["event_id"]) == (inbox_id, "evt_source_of_it")
            assert line.get("request_id") is None
        else:
            assert line["request_id"] == "req_source_of_it"
            assert line.get("inbox_id") is None and line.get("event_id") is None


def test_each_action_is_queued_as_a_job_named_by_it_that_keeps_no_result(container):
    """One RQ job per action, named ``action-<id>`` (an action queued again while it waits
    stays one job), running ``execute_action`` with the action's id; its result is not kept
    (the ledger holds the outcome) and a failed job is kept a day for inspection."""
    enqueue(container, ["act_queued_a", "act_queued_b"])
    queue = container.queue
    assert queue.job_ids == ["action-act_queued_a", "action-act_queued_b"]
    for action_id in ("act_queued_a", "act_queued_b"):
        job = Job.fetch(f"action-{action_id}", connection=queue.connection)
        assert (job.func_name, job.args, job.kwargs) == (
            "workers.actions.execute_action", (action_id,), {})
        assert (job.result_ttl, job.failure_ttl, job.description) == (
            0, 24 * 3600, f"execute action {action_id}")


def _audit_entries(container: Container, subject: str
                   ) -> list[tuple[str, str, str, dict[str, Any]]]:
    with container.sessions() as session:
        return [(e.merchant, e.actor, e.action, e.detail) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.subject == subject).order_by(AuditEntry.id))]


@responses.activate
def test_each_change_of_an_action_is_audited_with_its_kind_decision_and_providers_answer(
        container):
    """A refund made: the audit log says the worker changed the action, of which kind, for
    which decision, and the provider's id for it; a refund refused: the provider's code."""
    add_in_order(container, _charge("ch_audited"), _decision("audited", payment_ref="ch_audited"),
                       _action("audited", decision="audited", payment_ref="ch_audited"),
                       _decision("refused", payment_ref="ch_audited"),
                       _action("refused", decision="refused", payment_ref="ch_audited"))
    responses.post("https://api.stripe.com/v1/refunds", json={
        "id": "re_audited", "object": "refund", "status": "succeeded", "amount": 1000,
        "currency": "usd", "charge": "ch_audited"})
    assert run_action(container, "act_audited", now=NOW) == ActionStatus.SUCCEEDED
    assert _audit_entries(container, "act_audited") == [
        (MERCHANT, "worker", "action.succeeded", {
            "kind": "refund", "decision": "dec_audited", "provider_ref": "re_audited",
            "failure": None})]
    responses.replace(responses.POST, "https://api.stripe.com/v1/refunds", status=400, json={
        "error": {"type": "invalid_request_error", "code": "charge_disputed",
                  "message": "Charge ch_audited has been charged back."}})
    assert run_action(container, "act_refused", now=NOW) == ActionStatus.FAILED
    (entry,) = _audit_entries(container, "act_refused")
    assert entry[:3] == (MERCHANT, "worker", "action.failed")
    assert entry[3] == {"kind": "refund", "decision": "dec_refused", "provider_ref": None,
                        "failure": "disputed"}


def _refund_decision(basis: str | None) -> PolicyDecision:
    """A 10.00 USD full refund decided at NOW, resting on ``basis``."""
    ten = Money(1000, "USD")
    zero = Money(0, "USD")
    reasons = () if basis is None else (Reason(basis, "refunded within 16 days", True, ""),)
    return PolicyDecision(
        pack="theopenhost", request_kind="refund", outcome=Outcome.FULL_REFUND, decided_at=NOW,
        currency="USD", at_stake=ten, refund=ten, credit=zero, fee=zero, charge=zero,
        retained=zero, proposed_refund=None, line_items=(), effective_at=None,
        access_until=None, balance_due_by=None, notice_by=None, flags=(), reasons=reasons,
        basis=basis)


def _record_refund(container: Container, decision: PolicyDecision, **source: object
                   ) -> tuple[Decision, Action]:
    """Record ``decision`` about a stored 50.00 USD charge at NOW; the stored row, its action."""
    add_in_order(container, _charge("ch_recorded"))
    with container.sessions() as session, session.begin():
        payment = session.scalars(select(Payment)).one()
        row = record_decision(session, merchant=MERCHANT, decision=decision,
                              case={"kind": "refund"}, account_ref=ACCOUNT, payment=payment,
                              now=NOW, **source)  # type: ignore[arg-type]
        decision_id = row.id
    with container.sessions() as session:
        stored = session.get_one(Decision, decision_id)
        (action,) = session.scalars(select(Action).where(Action.decision_id == decision_id))
        session.expunge_all()
    return stored, action


@pytest.mark.parametrize("source", ["request", "event"])
def test_a_recorded_decision_is_stored_with_its_source_and_audited_with_its_actions(
        container, source):
    """Its id (``dec_`` and 32 hex digits), the support request or the webhook it answers, and
    an audit entry by the policy at the decision's time naming its outcome, status, source and
    actions."""
    if source == "event":
        add_in_order(container, InboxEvent(
            merchant=MERCHANT, provider="stripe", event_id="evt_decided", partition=0,
            event_type="charge.succeeded", livemode=False, raw_body=b"{}", headers={},
            received_at=LONG_AGO))
        with container.sessions() as session:
            ids = {"source_event_id": session.scalars(select(InboxEvent.id)).one()}
    else:
        ids = {"source_request_id": "req_recorded"}
    stored, action = _record_refund(container, _refund_decision("003 §1.1"), **ids)
    assert re.fullmatch(r"dec_[0-9a-f]{32}", stored.id)
    assert (stored.source_request_id, stored.source_event_id) == (
        ids.get("source_request_id"), ids.get("source_event_id"))
    assert (stored.outcome, stored.status, stored.payment_ref) == (
        "full_refund", DecisionStatus.RECORDED, "ch_recorded")
    assert (action.clause, action.reason) == ("003 §1.1", "full_refund under 003 §1.1")
    with container.sessions() as session:
        (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.subject == stored.id))
        assert (entry.at, entry.actor, entry.action, entry.merchant) == (
            NOW, "policy", "decision.recorded", MERCHANT)
        assert entry.detail == {"outcome": "full_refund", "status": DecisionStatus.RECORDED,
                                "request": ids.get("source_request_id"),
                                "event": ids.get("source_event_id"), "actions": [action.id]}


def test_a_refund_with_no_clause_to_cite_is_made_under_the_policy(container):
    _, action = _record_refund(container, _refund_decision(None))
    assert action.clause is None
    assert action.reason == "full_refund under the policy"


@pytest.mark.parametrize("amount", [1, 950], ids=["one minor unit", "9.50"])
def test_a_credit_in_a_currency_money_cannot_be_paid_in_is_refused_planning_nothing(
        container, amount):
    """``ZZZ`` is a well-formed code but no currency: the ledger will not hold credit in it."""
    add_in_order(container, _decision("zzz"))
    with container.sessions() as session, session.begin():
        row = session.get_one(Decision, "dec_zzz")
        with pytest.raises(ActionRefused) as refused:
            plan_actions(session, row, refund=None, credit=Money(amount, "ZZZ"), payment=None,
                         clause="003 §1.7c", reason="account_credit under 003 §1.7c", now=NOW)
    assert (refused.value.code, str(refused.value)) == (
        "unknown_currency", "ZZZ is not a currency a credit can be granted in")
    with container.sessions() as session:
        assert session.scalars(select(Action)).all() == []


def test_no_credit_plans_nothing_whatever_its_currency(container):
    add_in_order(container, _decision("zero"))
    with container.sessions() as session, session.begin():
        row = session.get_one(Decision, "dec_zero")
        assert plan_actions(session, row, refund=None, credit=Money(0, "ZZZ"), payment=None,
                            clause=None, reason="no_action", now=NOW) == []


def _plan(container: Container, name: str, **money: Money | None) -> list[Action]:
    """plan_actions for ``dec_<name>`` against a stored 50.00 USD charge, kept."""
    add_in_order(container, _charge(f"ch_{name}"),
                 _decision(name, payment_ref=f"ch_{name}"))
    with container.sessions() as session, session.begin():
        row = session.get_one(Decision, f"dec_{name}")
        payment = session.scalars(select(Payment)).one()
        planned = plan_actions(session, row, refund=money.get("refund"),
                               credit=money.get("credit"), payment=payment,
                               clause="003 §1.7b", reason="partial_refund under 003 §1.7b",
                               now=NOW)
        session.flush()
        session.expunge_all()
    return planned


def test_a_refund_and_a_credit_of_one_minor_unit_are_each_planned(container):
    """The smallest amounts still move money: a refund action on the charge and a credit
    action on the account, each named ``act_`` and 32 hex digits."""
    cent = Money(1, "USD")
    refund, credit = _plan(container, "cent", refund=cent, credit=cent)
    assert ACTION_ID.fullmatch(refund.id) and ACTION_ID.fullmatch(credit.id)
    assert (refund.kind, refund.provider, refund.target_kind, refund.payment_ref) == (
        "refund", "stripe", "charge", "ch_cent")
    assert (refund.amount, refund.currency) == (credit.amount, credit.currency) == (1, "USD")
    assert (credit.kind, credit.account_ref, credit.payment_ref) == ("credit", ACCOUNT, None)


def test_a_refund_without_its_payment_or_a_credit_without_an_account_is_a_programming_error(
        container):
    add_in_order(container, _decision("nothing"),
                 _decision("anonymous", account=None))  # type: ignore[arg-type]
    with container.sessions() as session, session.begin():
        row = session.get_one(Decision, "dec_nothing")
        with pytest.raises(ValueError, match="^a refund needs the payment to refund$"):
            plan_actions(session, row, refund=Money(100, "USD"), credit=None, payment=None,
                         clause=None, reason="r", now=NOW)
        row = session.get_one(Decision, "dec_anonymous")
        with pytest.raises(ValueError, match="^a credit needs the account to credit$"):
            plan_actions(session, row, refund=None, credit=Money(100, "USD"), payment=None,
                         clause=None, reason="r", now=NOW)
