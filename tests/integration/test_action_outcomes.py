"""What becomes of an action when the provider says no, and which action a refund answers.

* A provider call that fails: a failure worth retrying (Stripe unavailable) puts the action
  back to pending with the error recorded and its next attempt after a backoff that doubles
  with every attempt, the decision left as it was; the last allowed attempt, or a refusal
  (a charge already refunded), fails the action and puts its decision back in review, the
  reason naming the kind of action, the provider, the error code and the provider's message.
  The row is locked from the moment the failure is read until it is written (PostgreSQL).
* An action another worker or a webhook settles after the worker first read it but before it
  holds the row's lock is read afresh under the lock, and not carried out again (PostgreSQL).
* A refund its webhook reported while the call was out, the call's answer then lost (a 500, a
  timeout): settled, it stays settled; pending, the action waits for the refund's outcome.
  Neither is tried again nor put in front of a reviewer as a refund not made.
* A failed action of a decision that applied account credit closes that decision instead, the
  credit back on the account for its next payment; the log says which decision and why.
* A refund the provider reports finds the action that asked for it by the action id it carries,
  else by the refund id the action recorded, and never another merchant's action; once a
  batch has locked the actions its refunds name, the answer comes without another query.
* The decisions metric counts a decision once, when its outermost transaction commits: never
  one made in a transaction or a savepoint that was rolled back (also a savepoint released
  inside a transaction rolled back later), even when the same session commits later; a
  savepoint rolled back takes out only the decisions made inside it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
from prometheus_client import REGISTRY
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from ledger.models import (
    Action,
    ActionStatus,
    Decision,
    DecisionStatus,
    Payment,
    Refund,
)
from policy import Decision as PolicyDecision
from policy.decision import Outcome, Reason
from policy.money import Money
from service.bootstrap import Container
from tests.support.ledger import add_in_order, audit_of, stored_action, stored_decision
from tests.support.locks import action_row_free, action_row_free_at_each_write
from workers.actions import (
    CREDIT_APPLICATION,
    confirm_refund,
    lock_refund_actions,
    record_decision,
    run_action,
)

MERCHANT = "theopenhost"
OTHER_MERCHANT = "someoneelse"
CHARGE = "ch_outcomes"
NOW = datetime(2026, 10, 5, 12, tzinfo=UTC)
EARLIER = NOW - timedelta(days=1)
STRIPE_REFUNDS = "https://api.stripe.com/v1/refunds"
UNAVAILABLE_MESSAGE = "Stripe is briefly unavailable"
REFUSED_MESSAGE = "Charge ch_outcomes has already been refunded."
BASE_SECONDS = 30
MAX_ATTEMPTS = 5
ACTIONS_LOG = "workers.actions"


# --- Rows written straight into the ledger -----------------------------------------------------


def _payment(merchant: str = MERCHANT) -> Payment:
    """A 50.00 USD Stripe charge, nothing refunded yet."""
    return Payment(merchant=merchant, provider="stripe", provider_id=CHARGE,
                   version_at=EARLIER, version_event=f"evt_{merchant}_{CHARGE}", kind="charge",
                   status="succeeded", amount=5000, amount_refunded=0, currency="USD",
                   paid_at=EARLIER)


def _decision(name: str, *, merchant: str = MERCHANT, request_kind: str = "refund"
              ) -> Decision:
    return Decision(id=f"dec_{name}", merchant=merchant, account_ref="cus_outcomes",
                    payment_ref=CHARGE, pack="p", request_kind=request_kind,
                    outcome="partial_refund", case={}, decision={}, evaluated_at=EARLIER,
                    status=DecisionStatus.RECORDED)


def _refund_action(name: str, *, merchant: str = MERCHANT, attempts: int = 0,
                   status: str = ActionStatus.PENDING, provider_ref: str | None = None
                   ) -> Action:
    """A 10.00 USD refund of the charge, the action of ``dec_<name>``."""
    return Action(id=f"act_{name}", decision_id=f"dec_{name}", merchant=merchant,
                  kind="refund", provider="stripe", target_kind="charge", payment_ref=CHARGE,
                  account_ref="cus_outcomes", amount=1000, currency="USD", clause="003 §1.7c",
                  reason="partial_refund under 003 §1.7c", status=status,
                  provider_ref=provider_ref, attempts=attempts, created_at=EARLIER,
                  updated_at=EARLIER)


def _reported_refund(provider_id: str, *, status: str = "succeeded",
                     action_id: str | None = None, merchant: str = MERCHANT,
                     failure_reason: str | None = None) -> Refund:
    """A 10.00 USD Stripe refund of the charge as its webhook reports it."""
    return Refund(merchant=merchant, provider="stripe", provider_id=provider_id,
                  version_at=NOW, version_event=f"evt_{provider_id}", payment_ref=CHARGE,
                  status=status, amount=1000, currency="USD", refunded_at=NOW,
                  failure_reason=failure_reason, action_id=action_id)


def _messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == ACTIONS_LOG and r.levelno == level]


# --- A provider call that fails ----------------------------------------------------------------


@pytest.fixture
def patient(container: Container, database_url: str, redis_url: str,
            other_container: Callable[..., Container]) -> Container:
    """The gateway on the cleaned stores, allowed MAX_ATTEMPTS attempts, the first retry
    BASE_SECONDS after a failure."""
    return other_container(database_url, redis_url, max_attempts=MAX_ATTEMPTS,
                           retry_base_seconds=BASE_SECONDS)


def _stripe_unavailable() -> None:
    responses.post(STRIPE_REFUNDS, status=500,
                   json={"error": {"type": "api_error", "message": UNAVAILABLE_MESSAGE}})


def _stripe_refuses() -> None:
    responses.post(STRIPE_REFUNDS, status=400,
                   json={"error": {"type": "invalid_request_error",
                                   "code": "charge_already_refunded",
                                   "message": REFUSED_MESSAGE}})


def _attempted(container: Container, name: str, attempts_before: int) -> Action:
    """Run the refund action ``act_<name>`` at NOW, it having been tried ``attempts_before``
    times already; the action as it was left."""
    add_in_order(container, _payment(), _decision(name),
                 _refund_action(name, attempts=attempts_before))
    run_action(container, f"act_{name}", now=NOW)
    return stored_action(container, f"act_{name}")


@responses.activate
@pytest.mark.parametrize(("attempt", "wait_seconds"),
                         [(1, BASE_SECONDS), (2, 2 * BASE_SECONDS), (3, 4 * BASE_SECONDS),
                          (4, 8 * BASE_SECONDS)])
def test_a_retryable_failure_waits_twice_as_long_after_each_attempt(patient, attempt,
                                                                    wait_seconds):
    _stripe_unavailable()
    action = _attempted(patient, "retry", attempt - 1)
    assert len(responses.calls) == 1
    assert (action.status, action.attempts) == (ActionStatus.PENDING, attempt)
    assert action.next_attempt_at == NOW + timedelta(seconds=wait_seconds)
    assert (action.failure_code, action.last_error, action.updated_at) == (
        "unavailable", f"stripe: {UNAVAILABLE_MESSAGE}", NOW)
    decision = stored_decision(patient, "dec_retry")
    assert (decision.status, decision.status_reason) == (DecisionStatus.RECORDED, None)
    assert audit_of(patient, "act_retry") == [(NOW, "action.pending", "worker")]


@responses.activate
def test_a_retry_is_not_handed_out_again_before_its_time(patient):
    """The next attempt waits: run again a moment before it is due, the provider is not
    called; at its time, it is."""
    _stripe_unavailable()
    action = _attempted(patient, "early", 0)
    assert action.next_attempt_at is not None
    assert run_action(patient, action.id,
                      now=action.next_attempt_at - timedelta(seconds=1)) == "scheduled"
    assert len(responses.calls) == 1
    assert run_action(patient, action.id, now=action.next_attempt_at) == ActionStatus.PENDING
    assert len(responses.calls) == 2


@responses.activate
def test_a_retry_logs_the_action_the_error_and_when_it_will_be_tried_again(patient, caplog):
    _stripe_unavailable()
    with caplog.at_level(logging.WARNING, logger=ACTIONS_LOG):
        action = _attempted(patient, "logged", 1)
    assert _messages(caplog, logging.WARNING) == [
        f"action act_logged: stripe: {UNAVAILABLE_MESSAGE}; retrying at "
        f"{NOW + timedelta(seconds=2 * BASE_SECONDS)}"]
    assert action.next_attempt_at == NOW + timedelta(seconds=2 * BASE_SECONDS)


@responses.activate
def test_a_retryable_failure_on_the_last_allowed_attempt_fails_and_reopens_the_decision(
        patient, caplog):
    _stripe_unavailable()
    with caplog.at_level(logging.WARNING, logger=ACTIONS_LOG):
        action = _attempted(patient, "last", MAX_ATTEMPTS - 1)
    assert (action.status, action.attempts, action.next_attempt_at) == (
        ActionStatus.FAILED, MAX_ATTEMPTS, None)
    assert (action.failure_code, action.last_error, action.updated_at) == (
        "unavailable", f"stripe: {UNAVAILABLE_MESSAGE}", NOW)
    why = f"refund failed at stripe: unavailable: stripe: {UNAVAILABLE_MESSAGE}"
    decision = stored_decision(patient, "dec_last")
    assert decision.status == DecisionStatus.NEEDS_REVIEW
    assert decision.status_reason == (f"reopened: {why}; grant account credit or retry the "
                                      "refund")
    assert _messages(caplog, logging.WARNING) == []
    assert _messages(caplog, logging.ERROR) == [f"decision dec_last reopened: {why}"]
    assert audit_of(patient, "act_last") == [(NOW, "action.failed", "worker")]


@responses.activate
def test_a_refusal_fails_the_first_attempt_for_good_and_reopens_the_decision(container):
    _stripe_refuses()
    action = _attempted(container, "refused", 0)
    assert (action.status, action.attempts, action.next_attempt_at) == (
        ActionStatus.FAILED, 1, None)
    assert (action.failure_code, action.last_error) == (
        "already_refunded", f"stripe: {REFUSED_MESSAGE}")
    decision = stored_decision(container, "dec_refused")
    assert (decision.status, decision.status_reason) == (
        DecisionStatus.NEEDS_REVIEW,
        f"reopened: refund failed at stripe: already_refunded: stripe: {REFUSED_MESSAGE}; "
        "grant account credit or retry the refund")
    assert run_action(container, action.id, now=NOW + timedelta(days=1)) == ActionStatus.FAILED
    assert len(responses.calls) == 1  # a failed action is never tried again


@responses.activate
def test_a_failed_refund_of_a_credit_application_closes_it_with_the_credit_given_back(
        container, caplog):
    """Its use of credit no longer counts: a reviewer's refund would pay it a second time."""
    _stripe_refuses()
    add_in_order(container, _payment(), _decision("applied", request_kind=CREDIT_APPLICATION),
                 _refund_action("applied"))
    with caplog.at_level(logging.WARNING, logger=ACTIONS_LOG):
        assert run_action(container, "act_applied", now=NOW) == ActionStatus.FAILED
    why = f"refund failed at stripe: already_refunded: stripe: {REFUSED_MESSAGE}"
    decision = stored_decision(container, "dec_applied")
    assert (decision.status, decision.status_reason) == (
        DecisionStatus.CLOSED,
        f"refund not made: {why}; the credit is back on the account for its next payment")
    assert _messages(caplog, logging.ERROR) == [
        f"decision dec_applied closed, its credit given back: {why}"]


@responses.activate
def test_an_attempt_and_its_failure_are_each_written_under_the_actions_row_lock(postgres):
    """A refund webhook settling the same action meanwhile waits instead of being lost."""
    _stripe_unavailable()
    add_in_order(postgres, _payment(), _decision("locked"), _refund_action("locked"))
    with action_row_free_at_each_write(postgres, "act_locked") as seen:
        assert run_action(postgres, "act_locked", now=NOW) == ActionStatus.PENDING
    assert seen == [False, False]  # marked executing, then the failure recorded


@responses.activate
def test_an_action_settled_by_another_before_its_row_lock_is_read_afresh_and_not_repeated(
        postgres):
    """The worker reads the action, then takes the payment's lock and then the action's; a
    webhook that settles the action in between (its refund made) is seen once the lock is
    held: the worker returns, and the refund is not asked for a second time."""
    responses.post(STRIPE_REFUNDS, json={"id": "re_second", "object": "refund",
                                         "status": "succeeded", "amount": 1000,
                                         "currency": "usd", "charge": CHARGE})
    add_in_order(postgres, _payment(), _decision("raced"), _refund_action("raced"))
    settled: list[str] = []

    def settle_first(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not settled and statement.startswith("SELECT") and "FROM payments" in statement \
                and "FOR UPDATE" in statement:
            with postgres.engine.connect() as other:  # another connection: another worker
                other.execute(update(Action).where(Action.id == "act_raced")
                              .values(status=ActionStatus.SUCCEEDED, provider_ref="re_first"))
                other.commit()
            settled.append("act_raced")

    event.listen(postgres.engine, "before_cursor_execute", settle_first)
    try:
        assert run_action(postgres, "act_raced", now=NOW) == ActionStatus.SUCCEEDED
    finally:
        event.remove(postgres.engine, "before_cursor_execute", settle_first)
    assert settled == ["act_raced"]
    assert not responses.calls
    assert stored_action(postgres, "act_raced").provider_ref == "re_first"


# --- Which action a reported refund answers ----------------------------------------------------


Reported = tuple[str, str | None, str]  # (merchant, the action id it carries, the refund id)


def _confirmed(container: Container, refund: Refund, *, batch_locked: bool = False,
               also_in_batch: tuple[Reported, ...] = ()) -> tuple[Refund, list[str]]:
    """``refund`` stored and confirmed in one transaction (after the batch's lock of the
    actions it and ``also_in_batch`` name, if ``batch_locked``); the stored refund and the
    statements the confirmation itself sent."""
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    with container.sessions() as session, session.begin():
        session.add(refund)
        session.flush()
        if batch_locked:
            lock_refund_actions(session, [(refund.merchant, refund.action_id,
                                           refund.provider_id), *also_in_batch])
        event.listen(container.engine, "before_cursor_execute", count)
        try:
            confirm_refund(session, refund)
        finally:
            event.remove(container.engine, "before_cursor_execute", count)
    with container.sessions() as session:
        stored = session.scalars(select(Refund).where(
            Refund.provider_id == refund.provider_id, Refund.merchant == refund.merchant)).one()
        session.expunge(stored)
    return stored, statements


@pytest.mark.parametrize("batch_locked", [False, True], ids=["alone", "in a locked batch"])
def test_a_refund_naming_our_action_settles_it_and_records_its_id(container, batch_locked):
    """A worker died after its call: the action is still executing, the refund id unknown."""
    add_in_order(container, _decision("named"),
                 _refund_action("named", status=ActionStatus.EXECUTING, attempts=1))
    stored, _ = _confirmed(container, _reported_refund("re_named", action_id="act_named"),
                           batch_locked=batch_locked)
    assert (stored.action_id, stored.unsolicited) == ("act_named", False)
    action = stored_action(container, "act_named")
    assert (action.status, action.provider_ref) == (ActionStatus.SUCCEEDED, "re_named")
    assert stored_decision(container, "dec_named").status == DecisionStatus.EXECUTED


@pytest.mark.parametrize("batch_locked", [False, True], ids=["alone", "in a locked batch"])
def test_a_refund_naming_no_action_is_ours_when_an_action_recorded_its_id(container,
                                                                           batch_locked):
    add_in_order(container, _decision("by_ref"),
                 _refund_action("by_ref", status=ActionStatus.SUBMITTED, attempts=1,
                                provider_ref="re_by_ref"))
    stored, _ = _confirmed(container, _reported_refund("re_by_ref"), batch_locked=batch_locked)
    assert (stored.action_id, stored.unsolicited) == ("act_by_ref", False)
    assert stored_action(container, "act_by_ref").status == ActionStatus.SUCCEEDED


@pytest.mark.parametrize("batch_locked", [False, True], ids=["alone", "in a locked batch"])
def test_a_failed_refund_fails_our_action_and_reopens_its_decision(container, batch_locked,
                                                                   caplog):
    add_in_order(container, _decision("bounced"),
                 _refund_action("bounced", status=ActionStatus.SUBMITTED, attempts=1,
                                provider_ref="re_bounced"))
    with caplog.at_level(logging.WARNING, logger=ACTIONS_LOG):
        _confirmed(container, _reported_refund("re_bounced", status="failed",
                                               action_id="act_bounced",
                                               failure_reason="expired_or_canceled_card"),
                   batch_locked=batch_locked)
    why = "refund re_bounced failed: expired_or_canceled_card"
    action = stored_action(container, "act_bounced")
    assert (action.status, action.failure_code, action.last_error) == (
        ActionStatus.FAILED, "refund_failed", why)
    decision = stored_decision(container, "dec_bounced")
    assert (decision.status, decision.status_reason) == (
        DecisionStatus.NEEDS_REVIEW,
        f"reopened: {why}; grant account credit or retry the refund")
    assert _messages(caplog, logging.ERROR) == [f"decision dec_bounced reopened: {why}"]


@pytest.mark.parametrize("batch_locked", [False, True], ids=["alone", "in a locked batch"])
def test_a_refund_is_never_taken_for_another_merchants_action(container, batch_locked):
    """The other merchant's action has the same id the refund names and recorded the same
    refund id, and the batch holds it (it carries the other merchant's events too): neither
    makes the refund ours."""
    add_in_order(container, _decision("theirs", merchant=OTHER_MERCHANT),
                 _refund_action("theirs", merchant=OTHER_MERCHANT,
                                status=ActionStatus.SUBMITTED, attempts=1,
                                provider_ref="re_shared"))
    stored, _ = _confirmed(container, _reported_refund("re_shared", action_id="act_theirs"),
                           batch_locked=batch_locked,
                           also_in_batch=((OTHER_MERCHANT, "act_theirs", "re_shared"),))
    assert (stored.action_id, stored.unsolicited) == ("act_theirs", True)
    theirs = stored_action(container, "act_theirs")
    assert (theirs.status, theirs.provider_ref) == (ActionStatus.SUBMITTED, "re_shared")


@pytest.mark.parametrize("batch_locked", [False, True], ids=["alone", "in a locked batch"])
def test_a_refund_made_elsewhere_is_flagged_and_leaves_our_actions_alone(container,
                                                                         batch_locked):
    add_in_order(container, _decision("ours"),
                 _refund_action("ours", status=ActionStatus.SUBMITTED, attempts=1,
                                provider_ref="re_ours"))
    stored, _ = _confirmed(container, _reported_refund("re_dashboard"),
                           batch_locked=batch_locked)
    assert (stored.action_id, stored.unsolicited) == (None, True)
    ours = stored_action(container, "act_ours")
    assert (ours.status, ours.provider_ref) == (ActionStatus.SUBMITTED, "re_ours")


@pytest.mark.parametrize("names_action", [True, False], ids=["naming it", "by refund id"])
def test_after_a_batch_locked_its_actions_a_refund_finds_its_action_without_a_query(
        container, names_action):
    """Created at the provider: nothing to settle yet, only the refund linked to it."""
    add_in_order(container, _decision("cached"),
                 _refund_action("cached", status=ActionStatus.SUBMITTED, attempts=1,
                                provider_ref="re_cached"))
    refund = _reported_refund("re_cached", status="pending",
                              action_id="act_cached" if names_action else None)
    stored, statements = _confirmed(container, refund, batch_locked=True)
    assert statements == []  # the link is written with the rest of the batch
    assert (stored.action_id, stored.unsolicited) == ("act_cached", False)
    assert stored_action(container, "act_cached").status == ActionStatus.SUBMITTED


def test_two_refunds_in_one_locked_batch_each_settle_the_action_they_name(container):
    add_in_order(container, _decision("first"), _decision("second"),
                 _refund_action("first", status=ActionStatus.EXECUTING, attempts=1),
                 _refund_action("second", status=ActionStatus.EXECUTING, attempts=1))
    reported = [_reported_refund(f"re_{name}", action_id=f"act_{name}")
                for name in ("first", "second")]
    with container.sessions() as session, session.begin():
        session.add_all(reported)
        session.flush()
        lock_refund_actions(session, [(r.merchant, r.action_id, r.provider_id)
                                      for r in reported])
        for refund in reported:
            confirm_refund(session, refund)
    for name in ("first", "second"):
        action = stored_action(container, f"act_{name}")
        assert (action.status, action.provider_ref) == (ActionStatus.SUCCEEDED, f"re_{name}")


def test_a_batch_locks_the_refund_actions_its_refunds_name_and_no_others(postgres):
    """By the action id a refund carries, or by the refund id an action recorded; never an
    action of another kind that happens to hold the same id, nor one no refund names, nor
    another merchant's."""
    credit = _refund_action("credit_same_ref", provider_ref="re_named")
    credit.kind, credit.provider, credit.target_kind, credit.payment_ref = \
        "credit", None, None, None
    add_in_order(postgres, _payment(), _payment(OTHER_MERCHANT),
                 *(_decision(n) for n in ("by_id", "by_ref", "credit_same_ref", "unnamed")),
                 _decision("elsewhere", merchant=OTHER_MERCHANT),
                 _refund_action("by_id"), _refund_action("by_ref", provider_ref="re_named"),
                 credit, _refund_action("unnamed"),
                 _refund_action("elsewhere", merchant=OTHER_MERCHANT, provider_ref="re_id"))
    with postgres.sessions() as session, session.begin():
        lock_refund_actions(session, [(MERCHANT, "act_by_id", "re_id"),
                                      (MERCHANT, None, "re_named")])
        free = {name: action_row_free(postgres, f"act_{name}")
                for name in ("by_id", "by_ref", "credit_same_ref", "unnamed", "elsewhere")}
    assert free == {"by_id": False, "by_ref": False, "credit_same_ref": True, "unnamed": True,
                    "elsewhere": True}


def test_a_batch_locks_its_refund_actions_in_id_order(container):
    """Every worker takes a batch's action rows in one order (their ids), so two batches naming
    the same actions never wait for each other in a circle."""
    add_in_order(container, _payment(), _decision("b"), _decision("a"),
                 _refund_action("b", provider_ref="re_1"), _refund_action("a",
                                                                         provider_ref="re_2"))
    sent: list[str] = []

    def keep(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        sent.append(statement)

    with container.sessions() as session, session.begin():
        event.listen(container.engine, "before_cursor_execute", keep)
        try:
            lock_refund_actions(session, [(MERCHANT, None, "re_1"), (MERCHANT, None, "re_2")])
        finally:
            event.remove(container.engine, "before_cursor_execute", keep)
    (query,) = [sql for sql in sent if sql.startswith("SELECT")]
    assert query.rstrip().endswith(("ORDER BY actions.id", "ORDER BY actions.id FOR UPDATE"))


def test_a_later_report_naming_no_action_finds_the_one_an_earlier_report_linked_unwritten(
        container):
    """refund.created names the action and records the refund's id on it; refund.updated,
    applied in the same transaction before anything is written, names no action: it is
    found by that id all the same, and the refund is ours, not a stranger's."""
    add_in_order(container, _decision("linked"),
                 _refund_action("linked", status=ActionStatus.EXECUTING, attempts=1))
    with container.sessions() as session, session.begin():
        refund = _reported_refund("re_linked", status="pending", action_id="act_linked")
        session.add(refund)
        session.flush()
        confirm_refund(session, refund)
        refund.status, refund.action_id = "succeeded", None  # the later snapshot
        confirm_refund(session, refund)
    with container.sessions() as session:
        stored = session.scalars(select(Refund).where(Refund.provider_id == "re_linked")).one()
        assert (stored.action_id, stored.unsolicited) == ("act_linked", False)
    action = stored_action(container, "act_linked")
    assert (action.status, action.provider_ref) == (ActionStatus.SUCCEEDED, "re_linked")


def test_a_refund_naming_an_action_this_transaction_recorded_finds_it_before_it_is_written(
        container):
    """The action and its decision are not written yet when the refund asks for them."""
    add_in_order(container, _payment())
    with container.sessions() as session, session.begin():
        refund = _reported_refund("re_fresh", action_id="act_fresh")
        session.add(refund)
        session.flush()
        session.add_all([_decision("fresh"),
                         _refund_action("fresh", status=ActionStatus.EXECUTING, attempts=1)])
        confirm_refund(session, refund)
        assert (refund.action_id, refund.unsolicited) == ("act_fresh", False)
    action = stored_action(container, "act_fresh")
    assert (action.status, action.provider_ref) == (ActionStatus.SUCCEEDED, "re_fresh")


# --- The decisions metric ----------------------------------------------------------------------


def _counted(merchant: str) -> float:
    return REGISTRY.get_sample_value("gateway_decisions_total",
                                     {"merchant": merchant, "outcome": "deny"}) or 0.0


def _denial() -> PolicyDecision:
    """A denial decided at NOW: no money moves, so it records no action."""
    zero = Money(0, "USD")
    return PolicyDecision(
        pack="theopenhost", request_kind="refund", outcome=Outcome.DENY, decided_at=NOW,
        currency="USD", at_stake=None, refund=zero, credit=zero, fee=zero, charge=zero,
        retained=zero, proposed_refund=None, line_items=(), effective_at=None,
        access_until=None, balance_due_by=None, notice_by=None, flags=(),
        reasons=(Reason("003 §1.1", "outside the guarantee", True, ""),), basis="003 §1.1")


def _decide(session: Session, merchant: str) -> None:
    record_decision(session, merchant=merchant, decision=_denial(), case={"kind": "refund"},
                    account_ref="cus_outcomes", payment=None, now=NOW)


class _Count:
    """How many decisions of ``merchant`` the metric counted since this was made."""

    def __init__(self, merchant: str) -> None:
        self.merchant, self.start = merchant, _counted(merchant)

    @property
    def moved(self) -> float:
        return _counted(self.merchant) - self.start


def _stored_decisions(container: Container, merchant: str) -> int:
    with container.sessions() as session:
        return len(session.scalars(select(Decision.id).where(Decision.merchant == merchant))
                   .all())


def test_a_decision_counts_once_when_its_transaction_commits(container):
    count = _Count("metric-commit")
    with container.sessions() as session:
        with session.begin():
            _decide(session, "metric-commit")
            session.flush()
            assert count.moved == 0
        assert count.moved == 1
        with session.begin():
            pass  # a later transaction of the same session counts nothing again
    assert count.moved == 1


def test_a_decision_rolled_back_never_counts_even_when_the_session_commits_later(container):
    count = _Count("metric-rollback")
    with container.sessions() as session:
        session.begin()
        _decide(session, "metric-rollback")
        session.flush()
        session.rollback()
        with session.begin():
            _decide(session, "metric-rollback")
    assert count.moved == 1
    assert _stored_decisions(container, "metric-rollback") == 1


def test_a_savepoint_rolled_back_takes_only_its_own_decisions_out_of_the_count(container):
    count = _Count("metric-savepoint")
    with container.sessions() as session:
        with session.begin():
            _decide(session, "metric-savepoint")
            with session.begin_nested():
                _decide(session, "metric-savepoint")
            savepoint = session.begin_nested()
            _decide(session, "metric-savepoint")
            session.flush()
            savepoint.rollback()
            assert count.moved == 0
        assert count.moved == 2
    assert _stored_decisions(container, "metric-savepoint") == 2


def test_a_released_savepoints_decision_counts_only_when_the_transaction_commits(container):
    count = _Count("metric-released")
    with container.sessions() as session:
        with session.begin():
            with session.begin_nested():
                _decide(session, "metric-released")
            assert count.moved == 0
        assert count.moved == 1


def test_a_released_savepoints_decision_never_counts_if_the_transaction_rolls_back(container):
    count = _Count("metric-discarded")
    with container.sessions() as session:
        session.begin()
        with session.begin_nested(), session.begin_nested():
            _decide(session, "metric-discarded")
        session.rollback()
        with session.begin():
            pass
    assert count.moved == 0
    assert _stored_decisions(container, "metric-discarded") == 0


# --- A webhook that settles the refund while the call's answer is lost --------------------------


def _refund_made_then_answer_lost(container: Container, webhook_status: str) -> None:
    """Stripe makes the refund, its webhook is applied (a drain, in its own transaction, while
    the call is still out), and then the call's answer is lost: the worker sees a 500."""

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        with container.sessions() as session, session.begin():
            refund = _reported_refund("re_race", status=webhook_status, action_id="act_race")
            session.add(refund)
            session.flush()
            confirm_refund(session, refund)
        return 500, {}, json.dumps({"error": {"type": "api_error",
                                              "message": UNAVAILABLE_MESSAGE}})

    responses.add_callback(responses.POST, STRIPE_REFUNDS, callback=answer)


@responses.activate
@pytest.mark.parametrize("attempts_before", [0, MAX_ATTEMPTS - 1],
                         ids=["first attempt", "last attempt"])
def test_a_refund_its_webhook_settled_stays_settled_when_the_calls_answer_is_lost(
        patient, attempts_before):
    """Neither retried (a second refund, once Stripe has forgotten the key) nor failed and
    reopened (a reviewer told to grant credit or refund again for a refund that was made)."""
    _refund_made_then_answer_lost(patient, "succeeded")
    action = _attempted(patient, "race", attempts_before)
    assert (action.status, action.next_attempt_at, action.provider_ref) == (
        ActionStatus.SUCCEEDED, None, "re_race")
    decision = stored_decision(patient, "dec_race")
    assert (decision.status, decision.status_reason) == (DecisionStatus.EXECUTED, None)
    assert run_action(patient, action.id, now=NOW + timedelta(days=1)) == ActionStatus.SUCCEEDED
    assert len(responses.calls) == 1


@responses.activate
@pytest.mark.parametrize("attempts_before", [0, MAX_ATTEMPTS - 1],
                         ids=["first attempt", "last attempt"])
def test_a_refund_its_webhook_reported_pending_waits_for_its_outcome_when_the_answer_is_lost(
        patient, attempts_before):
    """The refund exists at Stripe: the action waits for the refund's own outcome, as any
    accepted refund does, and is neither tried again nor put in front of a reviewer; the
    webhook that says it failed is what reopens the decision."""
    _refund_made_then_answer_lost(patient, "pending")
    action = _attempted(patient, "race", attempts_before)
    assert (action.status, action.next_attempt_at, action.provider_ref) == (
        ActionStatus.SUBMITTED, None, "re_race")
    assert stored_decision(patient, "dec_race").status_reason is None
    assert run_action(patient, action.id, now=NOW + timedelta(days=1)) == ActionStatus.SUBMITTED
    assert len(responses.calls) == 1
    with patient.sessions() as session, session.begin():  # the refund's later webhook
        refund = session.scalars(select(Refund).where(Refund.provider_id == "re_race")).one()
        refund.status, refund.failure_reason = "failed", "lost_or_stolen_card"
        confirm_refund(session, refund)
    assert stored_action(patient, action.id).status == ActionStatus.FAILED
    assert stored_decision(patient, "dec_race").status == DecisionStatus.NEEDS_REVIEW
