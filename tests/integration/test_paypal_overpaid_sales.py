"""003 §1.7b: a PayPal sale paid after its subscription ended is an overpayment, decided once.

* The end is PayPal's status time; a cancellation whose payload has none ended by the event's
  own time: a sale paid before that is not an overpayment, one paid after is.
* Told twice that the subscription ended (cancelled, then expired), each sale after the end is
  decided once, for the subscriber's account, its reason naming the subscription and its end.
* A one-off sale (no billing agreement) is no subscription's overpayment, and is applied.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import Decision, Subscription
from sandbox import samples
from service.bootstrap import Container
from tests.support.delivery import run_worker
from tests.support.ledger import inbox_outcome
from tests.support.paypal import deliver

DAY = 86400


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")



def _scenario(key: str) -> samples.Scenario:
    return samples.Scenario(key=key, amount=2000, payment_method="paypal",
                            period_start=int(time.time() - 40 * DAY))


def _sale(scenario: samples.Scenario, name: str, paid: datetime) -> dict[str, Any]:
    sale = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=2,
                                event_id=f"WH-{name}-{scenario.key}", id=f"{name}-{scenario.key}",
                                create_time=_iso(paid), update_time=_iso(paid))
    sale["resource"]["create_time"] = _iso(paid)
    return sale


def _overpaid(container: Container) -> list[Decision]:
    with container.sessions() as s:
        decided = list(s.scalars(select(Decision).where(Decision.request_kind == "overpayment")))
        s.expunge_all()
    return decided


def _apply(client: FlaskClient, container: Container, *events: dict[str, Any]) -> None:
    for event in events:
        deliver(client, event)
        run_worker(container)


def test_a_cancellation_without_its_status_time_ended_by_the_events_time(
        client, container, paypal_refunds):
    scenario = _scenario("no-status-time")
    reported = datetime.now(UTC).replace(microsecond=0) - timedelta(days=5)
    cancelled = samples.paypal_event("BILLING.SUBSCRIPTION.CANCELLED", scenario,
                                     create_time=_iso(reported))
    cancelled["resource"].pop("status_update_time", None)
    cancelled["resource"]["update_time"] = _iso(reported)
    _apply(client, container, cancelled,
           _sale(scenario, "BEFORE", reported - timedelta(hours=1)),
           _sale(scenario, "AFTER", reported + timedelta(hours=1)))
    with container.sessions() as s:
        sub = s.scalars(select(Subscription)).one()
        assert (sub.status, sub.canceled_at) == ("CANCELLED", reported)
    assert [d.payment_ref for d in _overpaid(container)] == [f"AFTER-{scenario.key}"]


def test_a_subscription_cancelled_then_expired_decides_each_later_sale_once(
        client, container, paypal_refunds):
    scenario = _scenario("twice-ended")
    ended = datetime.fromtimestamp(scenario.period(1)[0] + DAY, UTC)
    cancelled = samples.paypal_event("BILLING.SUBSCRIPTION.CANCELLED", scenario)
    cancelled["resource"]["status_update_time"] = cancelled["resource"]["update_time"] = (
        _iso(ended))
    expired = samples.paypal_event("BILLING.SUBSCRIPTION.EXPIRED", scenario)
    expired["resource"]["status_update_time"] = _iso(ended)  # the same end, told again
    expired["resource"]["update_time"] = _iso(ended + timedelta(days=3))
    _apply(client, container, _sale(scenario, "LATE", ended + timedelta(days=2)), cancelled,
           expired)
    (decision,) = _overpaid(container)
    payer = cancelled["resource"]["subscriber"]["payer_id"]
    sub = scenario.paypal_subscription_id
    assert (decision.payment_ref, decision.account_ref) == (f"LATE-{scenario.key}", payer)
    assert decision.case["request"]["reason"] == (
        f"payment received for subscription {sub}, which ended {_iso(ended)}")


def test_a_one_off_sale_is_no_subscriptions_overpayment(client, container, paypal_refunds):
    scenario = _scenario("one-off")
    sale = _sale(scenario, "ONE-OFF", datetime.now(UTC) - timedelta(days=1))
    sale["resource"].pop("billing_agreement_id")
    _apply(client, container, sale)
    assert inbox_outcome(container, sale["id"]) == ("processed", None)
    assert _overpaid(container) == []
