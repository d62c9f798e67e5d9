"""What a refund the provider reports does to the action that asked for it, and the refund our
own call's answer records.

* A refund reported for no action of ours is flagged unsolicited; one that answers our action
  is linked to it and not flagged. The action keeps the refund id it already recorded, and
  records the reported one when it had none.
* A refund reported made (Stripe's "succeeded", PayPal's "completed") settles the action, with
  an audit entry by that provider's webhook, and the decision is executed once every one of
  its actions is done. An action reported made again gets no second audit entry; an action
  that already failed stays failed.
* A refund reported failed or canceled (Stripe's "failed" and "canceled", PayPal's "failed" and
  "cancelled") fails the action with failure code refund_failed and the refund's id, status and
  the provider's reason (or "no reason given") as its error, puts its decision back in front of
  a reviewer saying so, and is audited as the webhook's doing; an action already failed is left
  as it was.
* A refund reported pending only links the refund to the action.
* Our own call's answer records the refund as ours, field by field: the payment it refunds,
  what the provider said of it, our reason, dated when the call was made, test mode, and with
  the weakest version there is, so that any webhook about the refund supersedes it (in the same
  row) and none it follows is overwritten.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import responses
from sqlalchemy import select

from ledger.models import (
    Action,
    ActionStatus,
    AuditEntry,
    Decision,
    DecisionStatus,
    Payment,
    Refund,
)
from service.bootstrap import Container
from tests.support.ledger import add_in_order, stored_action, stored_decision
from workers import paypal_events, stripe_events
from workers.actions import run_action
from workers.context import EventContext

MERCHANT = "theopenhost"
CHARGE = "ch_confirmation"
CAPTURE = "CAP-CONFIRMATION"
NOW = datetime(2026, 10, 5, 12, tzinfo=UTC)
EARLIER = NOW - timedelta(days=1)
STRIPE_REFUNDS = "https://api.stripe.com/v1/refunds"
AMOUNT = 1000  # 10.00 USD, in cents
REASON = "partial_refund under 003 §1.7c"
REVIEW_ADVICE = "grant account credit or retry the refund"


# --- Rows written straight into the ledger -----------------------------------------------------


def _payment() -> Payment:
    """A 50.00 USD Stripe charge, nothing refunded yet."""
    return Payment(merchant=MERCHANT, provider="stripe", provider_id=CHARGE,
                   version_at=EARLIER, version_event=f"evt_{CHARGE}", kind="charge",
                   status="succeeded", amount=5000, amount_refunded=0, currency="USD",
                   paid_at=EARLIER)


def _decision(name: str, *, status: str = DecisionStatus.RECORDED,
              status_reason: str | None = None) -> Decision:
    return Decision(id=f"dec_{name}", merchant=MERCHANT, account_ref="cus_confirmation",
                    payment_ref=CHARGE, pack="p", request_kind="refund",
                    outcome="partial_refund", case={}, decision={}, evaluated_at=EARLIER,
                    status=status, status_reason=status_reason)


def _refund_action(name: str, *, status: str = ActionStatus.SUBMITTED,
                   provider_ref: str | None = None, provider: str = "stripe",
                   attempts: int = 1, last_error: str | None = None,
                   failure_code: str | None = None) -> Action:
    """A 10.00 USD refund, the action ``act_<name>`` of ``dec_<name>``."""
    target_kind, payment_ref = ("charge", CHARGE) if provider == "stripe" else ("capture",
                                                                                 CAPTURE)
    return Action(id=f"act_{name}", decision_id=f"dec_{name}", merchant=MERCHANT,
                  kind="refund", provider=provider, target_kind=target_kind,
                  payment_ref=payment_ref, account_ref="cus_confirmation", amount=AMOUNT,
                  currency="USD", clause="003 §1.7c", reason=REASON, status=status,
                  provider_ref=provider_ref, attempts=attempts, failure_code=failure_code,
                  last_error=last_error, created_at=EARLIER, updated_at=EARLIER)


def _credit_action(name: str) -> Action:
    """A 5.00 USD account credit of ``dec_<name>``, not granted yet."""
    return Action(id=f"act_{name}_credit", decision_id=f"dec_{name}", merchant=MERCHANT,
                  kind="credit", account_ref="cus_confirmation", amount=500, currency="USD",
                  reason=REASON, status=ActionStatus.PENDING, created_at=EARLIER,
                  updated_at=EARLIER)


# --- The provider's webhooks, through their handlers -------------------------------------------


def _apply(container: Container, handler: Any, ctx: EventContext) -> None:
    with container.sessions() as session, session.begin():
        handler(session, ctx)


def _stripe_reports(container: Container, refund_id: str, status: str, *,
                    action_id: str | None = None, failure_reason: str | None = None,
                    at: datetime = NOW) -> str:
    """Stripe's refund event for a 10.00 USD refund of the charge, sent at ``at``; its id."""
    refund: dict[str, Any] = {
        "id": refund_id, "object": "refund", "amount": AMOUNT, "charge": CHARGE,
        "currency": "usd", "status": status, "failure_reason": failure_reason,
        "created": int(at.timestamp()),
        "metadata": {"action_id": action_id} if action_id else {}}
    event_id = f"evt_{refund_id}_{status}_{int(at.timestamp())}"
    _apply(container, stripe_events.refund, EventContext(
        merchant=MERCHANT, provider="stripe", event_id=event_id,
        event_type="refund.updated", created_at=at, livemode=False,
        payload={"data": {"object": refund}}))
    return event_id


def _paypal_reports(container: Container, refund_id: str, status: str, *,
                    action_id: str | None = None, reason: str | None = None) -> None:
    """PayPal's refund event for a 10.00 USD refund of the capture; ``status`` as PayPal
    spells it (COMPLETED, CANCELLED)."""
    resource: dict[str, Any] = {
        "id": refund_id, "amount": {"value": "10.00", "currency_code": "USD"},
        "status": status, "create_time": NOW.isoformat(), "update_time": NOW.isoformat(),
        "links": [{"rel": "up",
                   "href": f"https://api-m.paypal.com/v2/payments/captures/{CAPTURE}"}]}
    if action_id:
        resource["custom_id"] = action_id
    if reason:
        resource["status_details"] = {"reason": reason}
    _apply(container, paypal_events.capture_refund, EventContext(
        merchant=MERCHANT, provider="paypal", event_id=f"WH-{refund_id}-{status}",
        event_type=f"PAYMENT.CAPTURE.{status}", created_at=NOW, livemode=False,
        payload={"resource": resource}))


# --- Reading the ledger back -------------------------------------------------------------------


def _refund(container: Container, refund_id: str) -> Refund:
    with container.sessions() as session:
        return session.scalars(select(Refund).where(Refund.provider_id == refund_id)).one()


def _refunds(container: Container) -> list[Refund]:
    with container.sessions() as session:
        return list(session.scalars(select(Refund).order_by(Refund.provider_id)))


def _audited(container: Container, subject: str) -> list[tuple[str, str, str | None]]:
    """The audit log's entries about ``subject``, oldest first: (what, by whom, failure)."""
    with container.sessions() as session:
        return [(e.action, e.actor, e.detail.get("failure")) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.subject == subject).order_by(AuditEntry.id))]


def _reopened(why: str) -> str:
    return f"reopened: {why}; {REVIEW_ADVICE}"


# --- Whose refund it is ------------------------------------------------------------------------


def test_a_refund_no_action_of_ours_asked_for_is_flagged_unsolicited(container):
    add_in_order(container, _decision("ours"), _refund_action("ours", provider_ref="re_ours"))
    _stripe_reports(container, "re_dashboard", "succeeded")
    stored = _refund(container, "re_dashboard")
    assert (stored.action_id, stored.unsolicited) == (None, True)
    ours = stored_action(container, "act_ours")
    assert (ours.status, ours.provider_ref) == (ActionStatus.SUBMITTED, "re_ours")
    assert _audited(container, "act_ours") == []


def test_a_refund_answering_our_action_is_linked_to_it_and_not_flagged(container):
    add_in_order(container, _decision("linked"),
                 _refund_action("linked", status=ActionStatus.EXECUTING))
    _stripe_reports(container, "re_linked", "pending", action_id="act_linked")
    stored = _refund(container, "re_linked")
    assert (stored.action_id, stored.unsolicited) == ("act_linked", False)
    assert stored_action(container, "act_linked").provider_ref == "re_linked"


def test_an_action_keeps_the_refund_id_it_recorded_when_a_report_names_it_with_another(
        container):
    add_in_order(container, _decision("kept"),
                 _refund_action("kept", provider_ref="re_kept_first"))
    _stripe_reports(container, "re_kept_second", "pending", action_id="act_kept")
    assert _refund(container, "re_kept_second").action_id == "act_kept"
    assert stored_action(container, "act_kept").provider_ref == "re_kept_first"


# --- A refund reported made --------------------------------------------------------------------


def test_a_stripe_refund_reported_succeeded_settles_the_action_as_the_webhooks_doing(container):
    add_in_order(container, _decision("made"), _refund_action("made", provider_ref="re_made"))
    _stripe_reports(container, "re_made", "succeeded", action_id="act_made")
    action = stored_action(container, "act_made")
    assert (action.status, action.failure_code, action.last_error) == (
        ActionStatus.SUCCEEDED, None, None)
    assert _audited(container, "act_made") == [("action.succeeded", "stripe webhook", None)]
    decision = stored_decision(container, "dec_made")
    assert (decision.status, decision.status_reason) == (DecisionStatus.EXECUTED, None)


def test_a_paypal_refund_reported_completed_settles_the_action_as_the_webhooks_doing(container):
    add_in_order(container, _decision("pp_made"),
                 _refund_action("pp_made", provider="paypal", provider_ref="PPRF-MADE"))
    _paypal_reports(container, "PPRF-MADE", "COMPLETED", action_id="act_pp_made")
    assert _refund(container, "PPRF-MADE").status == "completed"
    assert stored_action(container, "act_pp_made").status == ActionStatus.SUCCEEDED
    assert _audited(container, "act_pp_made") == [("action.succeeded", "paypal webhook", None)]
    assert stored_decision(container, "dec_pp_made").status == DecisionStatus.EXECUTED


def test_a_decision_with_an_action_still_to_do_is_not_executed_when_its_refund_is_made(
        container):
    add_in_order(container, _decision("half"), _refund_action("half", provider_ref="re_half"),
                 _credit_action("half"))
    _stripe_reports(container, "re_half", "succeeded", action_id="act_half")
    assert stored_action(container, "act_half").status == ActionStatus.SUCCEEDED
    assert stored_decision(container, "dec_half").status == DecisionStatus.RECORDED


def test_a_refund_reported_made_again_adds_no_second_audit_entry(container):
    add_in_order(container, _decision("twice"), _refund_action("twice", provider_ref="re_twice"))
    _stripe_reports(container, "re_twice", "succeeded", action_id="act_twice")
    _stripe_reports(container, "re_twice", "succeeded", action_id="act_twice",
                    at=NOW + timedelta(hours=1))
    assert _refund(container, "re_twice").refunded_at == NOW + timedelta(hours=1)  # applied
    assert stored_action(container, "act_twice").status == ActionStatus.SUCCEEDED
    assert _audited(container, "act_twice") == [("action.succeeded", "stripe webhook", None)]
    assert stored_decision(container, "dec_twice").status == DecisionStatus.EXECUTED


def test_an_action_that_already_failed_stays_failed_when_its_refund_is_reported_made(
        container):
    why = "refund failed at stripe: already_refunded: stripe: refused"
    add_in_order(container,
                 _decision("late", status=DecisionStatus.NEEDS_REVIEW,
                           status_reason=_reopened(why)),
                 _refund_action("late", status=ActionStatus.FAILED, provider_ref="re_late",
                                failure_code="already_refunded", last_error=why))
    _stripe_reports(container, "re_late", "succeeded", action_id="act_late")
    assert _refund(container, "re_late").action_id == "act_late"
    action = stored_action(container, "act_late")
    assert (action.status, action.failure_code, action.last_error) == (
        ActionStatus.FAILED, "already_refunded", why)
    assert _audited(container, "act_late") == []
    decision = stored_decision(container, "dec_late")
    assert (decision.status, decision.status_reason) == (
        DecisionStatus.NEEDS_REVIEW, _reopened(why))


# --- A refund reported failed or canceled ------------------------------------------------------


@pytest.mark.parametrize("status", ["failed", "canceled"])
def test_a_stripe_refund_reported_not_made_fails_the_action_and_reopens_its_decision(
        container, status):
    add_in_order(container, _decision("bounced"),
                 _refund_action("bounced", provider_ref="re_bounced"))
    _stripe_reports(container, "re_bounced", status, action_id="act_bounced",
                    failure_reason="expired_or_canceled_card")
    why = f"refund re_bounced {status}: expired_or_canceled_card"
    action = stored_action(container, "act_bounced")
    assert (action.status, action.failure_code, action.last_error) == (
        ActionStatus.FAILED, "refund_failed", why)
    assert _audited(container, "act_bounced") == [
        ("action.failed", "stripe webhook", "refund_failed")]
    decision = stored_decision(container, "dec_bounced")
    assert (decision.status, decision.status_reason) == (
        DecisionStatus.NEEDS_REVIEW, _reopened(why))


@pytest.mark.parametrize("status", ["FAILED", "CANCELLED"])
def test_a_paypal_refund_reported_not_made_fails_the_action_and_reopens_its_decision(
        container, status):
    """A PayPal refund event with no status details: the error says no reason was given."""
    add_in_order(container, _decision("pp_bounced"),
                 _refund_action("pp_bounced", provider="paypal", provider_ref="PPRF-BOUNCED"))
    _paypal_reports(container, "PPRF-BOUNCED", status, action_id="act_pp_bounced")
    why = f"refund PPRF-BOUNCED {status.lower()}: no reason given"
    action = stored_action(container, "act_pp_bounced")
    assert (action.status, action.failure_code, action.last_error) == (
        ActionStatus.FAILED, "refund_failed", why)
    assert _audited(container, "act_pp_bounced") == [
        ("action.failed", "paypal webhook", "refund_failed")]
    decision = stored_decision(container, "dec_pp_bounced")
    assert (decision.status, decision.status_reason) == (
        DecisionStatus.NEEDS_REVIEW, _reopened(why))


def test_a_failed_refund_without_a_reason_says_none_was_given(container):
    add_in_order(container, _decision("silent"), _refund_action("silent", provider_ref="re_silent"))
    _stripe_reports(container, "re_silent", "failed", action_id="act_silent")
    why = "refund re_silent failed: no reason given"
    assert stored_action(container, "act_silent").last_error == why
    assert stored_decision(container, "dec_silent").status_reason == _reopened(why)


def test_a_refund_reported_failed_again_leaves_the_failed_action_and_its_review_alone(
        container):
    add_in_order(container, _decision("again"), _refund_action("again", provider_ref="re_again"))
    _stripe_reports(container, "re_again", "failed", action_id="act_again",
                    failure_reason="lost_or_stolen_card")
    _stripe_reports(container, "re_again", "canceled", action_id="act_again",
                    failure_reason="unknown", at=NOW + timedelta(hours=1))
    assert _refund(container, "re_again").status == "canceled"  # the later report applied
    why = "refund re_again failed: lost_or_stolen_card"
    assert stored_action(container, "act_again").last_error == why
    assert _audited(container, "act_again") == [
        ("action.failed", "stripe webhook", "refund_failed")]
    assert stored_decision(container, "dec_again").status_reason == _reopened(why)


# --- A refund reported pending -----------------------------------------------------------------


def test_a_refund_reported_pending_only_links_the_refund_to_the_action(container):
    add_in_order(container, _decision("waiting"),
                 _refund_action("waiting", status=ActionStatus.EXECUTING))
    _stripe_reports(container, "re_waiting", "pending", action_id="act_waiting")
    action = stored_action(container, "act_waiting")
    assert (action.status, action.provider_ref, action.failure_code, action.last_error) == (
        ActionStatus.EXECUTING, "re_waiting", None, None)
    assert _audited(container, "act_waiting") == []
    decision = stored_decision(container, "dec_waiting")
    assert (decision.status, decision.status_reason) == (DecisionStatus.RECORDED, None)


# --- The refund our own call's answer records --------------------------------------------------


def _stripe_answers(refund_id: str, status: str, action_id: str) -> None:
    responses.post(STRIPE_REFUNDS, json={
        "id": refund_id, "object": "refund", "amount": AMOUNT, "charge": CHARGE,
        "currency": "usd", "status": status, "metadata": {"action_id": action_id}})


def _columns(refund: Refund) -> dict[str, Any]:
    return {c.key: getattr(refund, c.key) for c in Refund.__table__.columns if c.key != "id"}


@responses.activate
def test_our_calls_answer_records_the_refund_as_ours_dated_when_the_call_was_made(container):
    add_in_order(container, _payment(), _decision("api"),
                 _refund_action("api", status=ActionStatus.PENDING, attempts=0))
    _stripe_answers("re_api", "pending", "act_api")
    assert run_action(container, "act_api", now=NOW) == ActionStatus.SUBMITTED
    (stored,) = _refunds(container)
    assert _columns(stored) == {
        "merchant": MERCHANT, "provider": "stripe", "provider_id": "re_api",
        "payment_ref": CHARGE, "kind": "refund", "status": "pending", "amount": AMOUNT,
        "currency": "USD", "reason": REASON, "failure_reason": None, "refunded_at": NOW,
        "action_id": "act_api", "unsolicited": False, "livemode": False,
        # the weakest version there is: the earliest time, the lowest rank
        "version_at": datetime(1970, 1, 1, tzinfo=UTC), "version_rank": 0,
        "version_event": "api:act_api"}


@responses.activate
def test_any_webhook_about_the_refund_supersedes_what_our_call_recorded_in_the_same_row(
        container):
    """Even the least of them: a pending refund's, sent at the earliest time the ledger
    holds."""
    add_in_order(container, _payment(), _decision("superseded"),
                 _refund_action("superseded", status=ActionStatus.PENDING, attempts=0))
    _stripe_answers("re_superseded", "pending", "act_superseded")
    run_action(container, "act_superseded", now=NOW)
    earliest = datetime(2000, 1, 1, tzinfo=UTC)
    event_id = _stripe_reports(container, "re_superseded", "pending",
                               action_id="act_superseded", at=earliest)
    (stored,) = _refunds(container)
    assert (stored.provider, stored.version_event, stored.refunded_at) == (
        "stripe", event_id, earliest)
    assert (stored.action_id, stored.unsolicited) == ("act_superseded", False)


@responses.activate
def test_our_calls_answer_does_not_overwrite_the_webhook_that_reported_the_refund_first(
        container):
    """The webhook settled the refund while the call was out: the answer, older news, leaves
    the refund and the action as the webhook left them."""
    add_in_order(container, _payment(), _decision("first"),
                 _refund_action("first", status=ActionStatus.PENDING, attempts=0))
    seen: list[str] = []

    def webhook_then_answer(request: Any) -> tuple[int, dict[str, str], str]:
        seen.append(_stripe_reports(container, "re_first", "succeeded", action_id="act_first"))
        return 200, {}, ('{"id": "re_first", "object": "refund", "amount": 1000, '
                         f'"charge": "{CHARGE}", "currency": "usd", "status": "pending", '
                         '"metadata": {"action_id": "act_first"}}')

    responses.add_callback(responses.POST, STRIPE_REFUNDS, callback=webhook_then_answer)
    assert run_action(container, "act_first", now=NOW + timedelta(hours=1)) == (
        ActionStatus.SUCCEEDED)
    (stored,) = _refunds(container)
    assert (stored.status, stored.version_event, stored.refunded_at) == (
        "succeeded", seen[0], NOW)
    assert _audited(container, "act_first") == [("action.succeeded", "stripe webhook", None)]


@pytest.mark.parametrize(("status", "settled"), [("succeeded", ActionStatus.SUCCEEDED),
                                                  ("failed", ActionStatus.FAILED)])
def test_a_change_a_webhook_makes_is_dated_when_the_ledger_learns_it(container, status,
                                                                       settled):
    """Not at the action's previous change (a day earlier here): the audit entry says when the
    gateway recorded the outcome, and a reviewer's answer given in between is not taken to
    have answered a failure that came after it."""
    add_in_order(container, _decision("dated"), _refund_action("dated", provider_ref="re_dated"))
    before = datetime.now(UTC)
    _stripe_reports(container, "re_dated", status, action_id="act_dated")
    action = stored_action(container, "act_dated")
    assert action.status == settled
    assert action.updated_at >= before
    with container.sessions() as session:
        (entry,) = session.scalars(select(AuditEntry).where(AuditEntry.subject == "act_dated"))
    assert entry.at == action.updated_at


@pytest.mark.parametrize(("status", "kept"), [("FAILED", "ECHECK"), ("CANCELLED", "ECHECK"),
                                              ("PENDING", None)])
def test_a_paypal_refund_not_made_says_why_as_paypal_gave_it(container, status, kept):
    """PayPal's status_details.reason says why a refund failed (or is still pending, which is
    no failure and is not kept as one); support reads it in the reopened decision."""
    add_in_order(container, _decision("pp_why"),
                 _refund_action("pp_why", provider="paypal", provider_ref="PPRF-WHY"))
    _paypal_reports(container, "PPRF-WHY", status, action_id="act_pp_why", reason="ECHECK")
    assert _refund(container, "PPRF-WHY").failure_reason == kept
    if kept is not None:
        assert stored_action(container, "act_pp_why").last_error == (
            f"refund PPRF-WHY {status.lower()}: ECHECK")
