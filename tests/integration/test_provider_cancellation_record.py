"""What the gateway records when a provider reports a subscription cancelled.

Pinned here: the cancellation request filed on the customer's behalf as its Case shows it
(kind, received at the provider's cancellation time, reason "cancelled at <provider>"), the
decision's account, the review reason of a period owed (and none when the period owed costs
nothing), the confirmation notice (account, subscription, the decision's effective date,
written at the worker's time by the provider), the audit entry of a cancellation the policy
cannot decide, and that a stale report about a subscription still active decides nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import AuditEntry, Decision, DecisionStatus, InboxEvent, InboxStatus
from ledger.schedule_models import Notice
from policy.errors import PackError
from sandbox import samples
from service.bootstrap import Container
from tests.support import stripe as sig
from tests.support.delivery import run_worker, settle
from workers.drain import process_batch

MERCHANT = "oneclick"
SECRET = "whsec_test_oneclick_current"
OCTOBER = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp())


def _post(client: FlaskClient, event: dict[str, object]) -> None:
    assert sig.post(client, event, merchant=MERCHANT, secret=SECRET).status_code == 200


def _paid_subscription(client: FlaskClient, container: Container, key: str,
                       amount: int = 5000) -> samples.Scenario:
    """A One Click subscription of October 2026, created and paid, every event applied."""
    scenario = samples.Scenario(key=key, amount=amount, period_start=OCTOBER)
    for event_type in ("customer.subscription.created", "charge.succeeded"):
        _post(client, samples.stripe_event(event_type, scenario))
        run_worker(container)
    return scenario


def _cancel_in_stripe(client: FlaskClient, container: Container, scenario: samples.Scenario,
                      at: datetime, now: datetime,
                      edit: Callable[[dict[str, Any]], dict[str, Any]] = lambda event: event,
                      **fields: Any) -> int:
    """Stripe reports the subscription cancelled at ``at`` (the event passed through ``edit``,
    ``fields`` set on it); the worker applies it at ``now``. Returns the event's inbox id."""
    stamp = int(at.timestamp())
    _post(client, edit(samples.stripe_event("customer.subscription.deleted", scenario,
                                            canceled_at=stamp, ended_at=stamp, **fields)))
    settle(container)  # stored from the intake, not applied yet
    with container.sessions() as s:
        inbox_id = s.scalars(select(InboxEvent.id).where(
            InboxEvent.event_type == "customer.subscription.deleted")).one()
    process_batch(container, [inbox_id], now=now)
    return inbox_id


def test_a_late_cancellation_at_stripe_is_decided_for_the_customer_and_confirmed(client,
                                                                                  container):
    """Cancelled on the 26th (late): the request is the customer's, received when Stripe
    cancelled; the period owed sends it to review; the confirmation carries the decision's
    effective date and is written at the worker's time by Stripe."""
    scenario = _paid_subscription(client, container, "record-late")
    cancelled = datetime(2026, 10, 26, 12, tzinfo=UTC)
    now = cancelled + timedelta(hours=1)
    inbox_id = _cancel_in_stripe(client, container, scenario, cancelled, now)
    with container.sessions() as s:
        decision = s.scalars(select(Decision)).one()
        notice = s.scalars(select(Notice)).one()
        scheduled = s.scalars(select(AuditEntry).where(
            AuditEntry.action == "notice.scheduled")).one()
        undecided = s.scalars(select(AuditEntry).where(
            AuditEntry.action == "cancellation.undecided")).all()
    assert decision.merchant == MERCHANT
    assert decision.request_kind == "cancellation"
    assert decision.account_ref == scenario.customer_id
    assert decision.source_event_id == inbox_id
    assert decision.case["request"] == {"kind": "cancellation",
                                        "received_at": "2026-10-26T12:00:00Z",
                                        "reason": "cancelled at stripe",
                                        "identity": {"verified": True}}
    assert decision.outcome == "cancel_next_period", decision.decision["reasons"]
    charge = decision.decision["amounts"]["charge"]
    assert decision.status == DecisionStatus.NEEDS_REVIEW
    assert decision.status_reason == (
        f"cancelled at stripe after the deadline: one more period ({charge['amount']} "
        f"{charge['currency']}) is owed and must be invoiced by hand")
    effective = decision.decision["dates"]["effective_at"]
    assert effective != "2026-10-26T13:00:00Z"
    assert (notice.merchant, notice.kind, notice.account_ref, notice.subject_ref) == (
        MERCHANT, "cancellation_confirmation", scenario.customer_id, scenario.subscription_id)
    assert notice.body["effective_at"] == effective
    assert notice.body["subscription_ref"] == scenario.subscription_id
    assert notice.body["decision_id"] == decision.id
    assert notice.send_at.replace(tzinfo=UTC) == now
    assert notice.created_at.replace(tzinfo=UTC) == now
    assert (scheduled.actor, scheduled.subject) == ("stripe", scenario.subscription_id)
    assert scheduled.at.replace(tzinfo=UTC) == now
    assert undecided == []


def test_an_on_time_cancellation_at_stripe_is_confirmed_for_the_end_of_the_period(client,
                                                                                 container):
    """Cancelled on the 10th: on time, no period owed, so nothing for review; the customer is
    confirmed with the decision's effective date, the period's end."""
    scenario = _paid_subscription(client, container, "record-on-time")
    cancelled = datetime(2026, 10, 10, 9, tzinfo=UTC)
    now = cancelled + timedelta(minutes=5)
    _cancel_in_stripe(client, container, scenario, cancelled, now)
    with container.sessions() as s:
        decision = s.scalars(select(Decision)).one()
        notice = s.scalars(select(Notice)).one()
    assert decision.outcome == "cancel_at_period_end", decision.decision["reasons"]
    assert decision.account_ref == scenario.customer_id
    assert decision.status != DecisionStatus.NEEDS_REVIEW
    assert decision.status_reason is None
    assert decision.case["request"]["received_at"] == "2026-10-10T09:00:00Z"
    effective = decision.decision["dates"]["effective_at"]
    assert effective == "2026-11-01T04:00:00Z"
    assert (notice.account_ref, notice.subject_ref) == (scenario.customer_id,
                                                        scenario.subscription_id)
    assert notice.body["effective_at"] == effective
    assert notice.body["decision_id"] == decision.id
    assert notice.created_at.replace(tzinfo=UTC) == now


def _free(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` about a subscription whose price is nothing."""
    item = event["data"]["object"]["items"]["data"][0]
    for key, field in (("price", "unit_amount"), ("plan", "amount")):
        if isinstance(item.get(key), dict):
            item[key][field] = 0
    return event


def test_a_late_cancellation_with_nothing_owed_is_confirmed_without_review(client,
                                                                           container):
    """A free subscription cancelled late: the next period is owed but costs nothing, so
    there is nothing to invoice by hand and nothing for review; the customer is confirmed."""
    scenario = samples.Scenario(key="record-free", amount=5000, period_start=OCTOBER)
    _post(client, _free(samples.stripe_event("customer.subscription.created", scenario)))
    run_worker(container)
    _cancel_in_stripe(client, container, scenario, datetime(2026, 10, 26, 12, tzinfo=UTC),
                      datetime(2026, 10, 26, 13, tzinfo=UTC), edit=_free)
    with container.sessions() as s:
        decision = s.scalars(select(Decision)).one()
        notice = s.scalars(select(Notice)).one()
    assert decision.case["order"]["amount"] == {"amount": 0, "currency": "USD"}
    assert decision.outcome == "cancel_next_period", decision.decision["reasons"]
    assert decision.status != DecisionStatus.NEEDS_REVIEW
    assert decision.status_reason is None
    assert notice.body["effective_at"] == decision.decision["dates"]["effective_at"]


def test_a_cancellation_the_policy_cannot_decide_is_audited_and_not_confirmed(
        client, container, monkeypatch: pytest.MonkeyPatch):
    """The merchant's policy cannot be loaded: no decision, no confirmation, and an audit entry
    by Stripe at the worker's time naming the subscription and the error."""
    scenario = _paid_subscription(client, container, "record-undecided")

    def broken(name: str) -> None:
        raise PackError(name, "", "no such pack")

    monkeypatch.setattr(container, "policy_pack", broken)
    cancelled = datetime(2026, 10, 26, 12, tzinfo=UTC)
    now = cancelled + timedelta(hours=2)
    inbox_id = _cancel_in_stripe(client, container, scenario, cancelled, now)
    with container.sessions() as s:
        decisions = s.scalars(select(Decision)).all()
        notices = s.scalars(select(Notice)).all()
        entry = s.scalars(select(AuditEntry).where(
            AuditEntry.action == "cancellation.undecided")).one()
        event = s.get(InboxEvent, inbox_id)
    assert decisions == [] and notices == []
    assert (entry.merchant, entry.actor, entry.subject) == (MERCHANT, "stripe",
                                                           scenario.subscription_id)
    assert entry.at.replace(tzinfo=UTC) == now
    assert entry.detail == {"error": "pack 'oneclick', (pack): no such pack"}
    assert event is not None
    assert (event.status, event.last_error) == (InboxStatus.PROCESSED, None)


def test_a_stale_cancellation_of_a_subscription_still_active_decides_nothing(client,
                                                                             container):
    """A deletion older than the subscription the ledger holds leaves it active: there is no
    cancellation to decide or confirm."""
    scenario = _paid_subscription(client, container, "record-stale")
    inbox_id = _cancel_in_stripe(client, container, scenario, datetime(2026, 10, 5, tzinfo=UTC),
                                 datetime(2026, 10, 5, 1, tzinfo=UTC), created=OCTOBER - 3600)
    with container.sessions() as s:
        event = s.get(InboxEvent, inbox_id)
        assert event is not None and event.status == InboxStatus.PROCESSED
        assert s.scalars(select(Decision)).all() == []
        assert s.scalars(select(Notice)).all() == []
        assert s.scalars(select(AuditEntry).where(
            AuditEntry.action == "cancellation.undecided")).all() == []
