"""003 §1.7b-d: a PayPal payment for a billing period that is already paid is an overpayment,
decided once whatever order the subscription, its sale and the second payment arrive in."""

from __future__ import annotations

import itertools
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any, cast

import pytest
import responses
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import Action, ActionStatus, Decision, InboxEvent
from sandbox import samples
from service.bootstrap import Container
from tests.support.delivery import deliver as post
from tests.support.delivery import run_worker, settle
from tests.support.ledger import add_in_order, inbox_outcome, paypal_payment
from tests.support.paypal import deliver
from workers.drain import process_batch

DAY = 86400
API = "https://api-m.sandbox.paypal.com"


def _manual(scenario: samples.Scenario, cycle: int, after_days: int) -> dict[str, Any]:
    """A second sale on the same billing agreement, ``after_days`` into the cycle's period."""
    start = scenario.period(cycle)[0] + after_days * DAY
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))
    return samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=cycle,
                                event_id=f"WH-MANUAL-{scenario.key}", id=f"MANUAL-{scenario.key}",
                                create_time=at, update_time=at)


def _refunds_answered() -> None:
    responses.post(f"{API}/v1/oauth2/token",
                   json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})
    responses.add_callback(
        responses.POST, f"{API}/v1/payments/sale/MANUAL-dup/refund",
        callback=lambda req: (200, {}, json.dumps({
            "id": "RF-MANUAL", "state": "completed",
            "amount": json.loads(cast(bytes, req.body))["amount"]})))


ORDERS = list(itertools.permutations(["subscription", "sale", "manual"]))


def _apply(client: FlaskClient, container: Container, event: dict[str, Any],
           redone: bool) -> None:
    """Deliver ``event`` and apply it: in a batch of its own, or (``redone``) in a batch with
    an event that fails, so that the batch is redone event by event, each in a savepoint."""
    deliver(client, event)
    if redone:
        orphan = samples.stripe_event("invoice.upcoming",
                                      samples.Scenario(key=f"orphan-{event['id']}"), cycle=1)
        post(client, "stripe", orphan)  # its subscription is unknown: it fails, to retry
        settle(container)
        with container.sessions() as s:
            ids = list(s.scalars(select(InboxEvent.id).where(
                InboxEvent.event_id.in_([event["id"], orphan["id"]]))))
        assert process_batch(container, sorted(ids)) == 2
    run_worker(container)


@responses.activate
@pytest.mark.parametrize("redone", [False, True], ids=["batch", "redone-one-by-one"])
@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_a_second_payment_for_a_paid_period_is_refunded_less_the_fee_once(
        client: FlaskClient, container: Container, order: tuple[str, ...],
        redone: bool) -> None:
    # Cycle 1 began 40 days ago and was paid; cycle 2 began 10 days ago, was paid by the
    # subscription, and again by hand two days later: 20.00 overpaid, 8 days old.
    scenario = samples.Scenario(key="dup", amount=2000, payment_method="paypal",
                                period_start=int(time.time() - 40 * DAY))
    _refunds_answered()
    deliver(client, samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=1))
    events = {"subscription": samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", scenario),
              "sale": samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=2),
              "manual": _manual(scenario, 2, after_days=2)}
    for name in order:
        _apply(client, container, events[name], redone)
    with container.sessions() as s:
        decisions = s.scalars(select(Decision).where(Decision.request_kind == "overpayment")
                              ).all()
        assert len(decisions) == 1, [(d.payment_ref, d.outcome) for d in decisions]
        (decision,) = decisions
        action = s.scalars(select(Action).where(Action.decision_id == decision.id)).one()
    assert decision.payment_ref == "MANUAL-dup"
    assert decision.case["payment"]["overpaid_amount"] == {"amount": 2000, "currency": "USD"}
    assert "which sale" in decision.case["request"]["reason"]
    assert decision.outcome == "partial_refund"  # 8 days old: refunded, less 5% (1.00)
    assert (action.amount, action.status) == (1900, ActionStatus.SUCCEEDED)


@responses.activate
def test_one_payment_per_period_and_a_different_amount_are_not_overpayments(
        client: FlaskClient, container: Container) -> None:
    """Consecutive periods each paid once, and a setup fee (another amount) beside the first
    payment: nothing is overpaid."""
    scenario = samples.Scenario(key="once", amount=2000, payment_method="paypal",
                                period_start=int(time.time() - 40 * DAY))
    fee = _manual(scenario, 1, after_days=0)
    fee["resource"]["amount"] = {"total": "5.00", "currency": "USD"}
    for event in (samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", scenario),
                  samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=1), fee,
                  samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=2)):
        deliver(client, event)
        run_worker(container)
    with container.sessions() as s:
        assert s.scalars(select(Decision).where(Decision.request_kind == "overpayment")
                         ).all() == []


@responses.activate
def test_only_this_subscriptions_completed_sales_can_repeat_a_period(
        client: FlaskClient, container: Container) -> None:
    """In the period the subscription paid, payments that are not this subscription's completed
    sales repeat nothing: a sale still pending, a capture, another subscription's sale, another
    merchant's sale under the same subscription id (ids are unique per merchant only)."""
    scenario = samples.Scenario(key="strangers", amount=2000, payment_method="paypal",
                                period_start=int(time.time() - 40 * DAY))
    for event in (samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", scenario),
                  samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=1)):
        deliver(client, event)
        run_worker(container)
    later = datetime.fromtimestamp(scenario.period(2)[0] + 3 * DAY, UTC)
    sub = scenario.paypal_subscription_id
    add_in_order(container,
                 paypal_payment("theopenhost", "PENDING-SAME-SUB", sub, later, status="pending"),
                 paypal_payment("theopenhost", "CAPTURE-SAME-SUB", sub, later, kind="capture"),
                 paypal_payment("theopenhost", "SALE-OTHER-SUB", "I-ANOTHER-SUBSCRIPTION", later),
                 paypal_payment("digitalcare", "SALE-OTHER-MERCHANT", sub, later))
    deliver(client, samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=2))
    run_worker(container)
    with container.sessions() as s:
        assert s.scalars(select(Decision.payment_ref).where(
            Decision.request_kind == "overpayment")).all() == []


@responses.activate
def test_a_first_payment_before_the_start_still_pays_the_first_period(
        client: FlaskClient, container: Container) -> None:
    """A subscription approved with a later start date is paid at approval, days before it
    starts: that payment pays the first period, and a second one in that period is the
    repeat."""
    scenario = samples.Scenario(key="dup", amount=2000, payment_method="paypal",
                                period_start=int(time.time() - 20 * DAY))
    _refunds_answered()
    first = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=1)
    early = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(scenario.period(1)[0] - 3 * DAY))
    first["resource"]["create_time"] = first["resource"]["update_time"] = early
    for event in (samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", scenario), first,
                  _manual(scenario, 1, after_days=2)):
        deliver(client, event)
        run_worker(container)
    with container.sessions() as s:
        assert s.scalars(select(Decision.payment_ref).where(
            Decision.request_kind == "overpayment")).all() == ["MANUAL-dup"]


def test_sales_of_a_subscription_not_yet_started_repeat_nothing(
        client: FlaskClient, container: Container) -> None:
    """Periods are counted from the start date: a subscription PayPal shows without one (still
    awaiting approval) has no periods, so two sales of it repeat nothing, and its event is
    applied, not failed."""
    scenario = samples.Scenario(key="unstarted", amount=2000, payment_method="paypal",
                                period_start=int(time.time() - 40 * DAY))
    sub = scenario.paypal_subscription_id
    paid = datetime.fromtimestamp(scenario.period(1)[0] + DAY, UTC)
    add_in_order(container, paypal_payment("theopenhost", "SALE-UNSTARTED-1", sub, paid),
                 paypal_payment("theopenhost", "SALE-UNSTARTED-2", sub, paid))
    created = samples.paypal_event("BILLING.SUBSCRIPTION.CREATED", scenario)
    created["resource"].pop("start_time", None)
    created["resource"]["status"] = "APPROVAL_PENDING"
    deliver(client, created)
    run_worker(container)
    assert inbox_outcome(container, created["id"]) == ("processed", None)
    with container.sessions() as s:
        assert s.scalars(select(Decision)).all() == []


@responses.activate
def test_two_sales_of_one_period_learnt_before_their_subscription_are_decided_when_it_comes(
        client: FlaskClient, container: Container) -> None:
    """The subscription's event is the last of three: its two sales, both of the first
    period, are all the subscription has, and the second is the repeat, traced to the
    subscription's event and naming the period and the sale that paid it first."""
    scenario = samples.Scenario(key="dup", amount=2000, payment_method="paypal",
                                period_start=int(time.time() - 20 * DAY))
    _refunds_answered()
    first = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=1)
    activated = samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", scenario)
    for event in (first, _manual(scenario, 1, after_days=2), activated):
        deliver(client, event)
        run_worker(container)
    with container.sessions() as s:
        (decision,) = s.scalars(select(Decision).where(Decision.request_kind == "overpayment"))
        source = s.get(InboxEvent, decision.source_event_id)
    assert decision.payment_ref == "MANUAL-dup"
    assert source is not None and source.event_id == activated["id"]
    sub, started = scenario.paypal_subscription_id, activated["resource"]["start_time"]
    assert decision.case["request"]["reason"] == (
        f"second payment for the billing period of subscription {sub} from {started}, which "
        f"sale {first['resource']['id']} had already paid")


def test_a_batch_of_sales_of_several_subscriptions_is_applied_as_one(
        client: FlaskClient, container: Container, caplog: pytest.LogCaptureFixture) -> None:
    """The batch reads the sales of every subscription its events name in one query, under
    their locks taken together: it is applied whole, not redone event by event."""
    scenarios = [samples.Scenario(key=f"batch-{n}", amount=2000, payment_method="paypal",
                                  period_start=int(time.time() - 20 * DAY)) for n in range(2)]
    events = [samples.paypal_event("PAYMENT.SALE.COMPLETED", s, cycle=1) for s in scenarios]
    for event in events:
        deliver(client, event)
    settle(container)
    with container.sessions() as s:
        ids = sorted(s.scalars(select(InboxEvent.id)))
    with caplog.at_level(logging.INFO, logger="workers.drain"):
        assert process_batch(container, ids) == 2
    assert not [r for r in caplog.records if "failed as a whole" in r.getMessage()]
    with container.sessions() as s:
        assert {e.status for e in s.scalars(select(InboxEvent))} == {"processed"}
