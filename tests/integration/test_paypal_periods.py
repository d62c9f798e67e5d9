"""003 §1.7b-d: which PayPal billing period a sale pays, for telling a second payment for a
paid period (an overpayment) from the next period's payment.

* A period begins at midnight UTC the day before the start's UTC date a month (or term) on,
  whatever the machine's own time zone: a sale half an hour into a period's first day pays
  that period, not the one before.
* A yearly subscription's period is twelve months: a second payment two months in repeats the
  first; one twelve months and a day in pays the next year.
* A payment at the first instant of a period is in it; a sale without its payment time is in
  no period, and its event is applied all the same.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import Decision, Subscription
from sandbox import samples
from service.bootstrap import Container
from tests.support.delivery import run_worker
from tests.support.ledger import add_in_order, inbox_outcome, paypal_payment
from tests.support.paypal import deliver


def _second_payment_repeats(client: FlaskClient, container: Container, key: str,
                            started: datetime, first: datetime, second: datetime,
                            interval: str | None = None) -> bool:
    """A 20.00 PayPal subscription started at ``started`` (billed yearly when ``interval`` is
    ``"year"``) paid at ``first``, then a sale of 20.00 at ``second``: is it an overpayment?"""
    scenario = samples.Scenario(key=key, amount=2000, payment_method="paypal")
    sub = scenario.paypal_subscription_id
    add_in_order(container,
                 Subscription(merchant="theopenhost", provider="paypal", provider_id=sub,
                              version_at=started, version_event=f"evt_{sub}", status="active",
                              customer_ref=f"payer-{key}", currency="USD", started_at=started,
                              interval=interval, interval_count=1 if interval else None),
                 paypal_payment("theopenhost", f"FIRST-{key}", sub, first))
    at = second.strftime("%Y-%m-%dT%H:%M:%SZ")
    sale = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=2,
                                event_id=f"WH-SECOND-{key}", id=f"SECOND-{key}",
                                create_time=at, update_time=at)
    sale["resource"]["create_time"] = at  # when it was paid
    deliver(client, sale)
    run_worker(container)
    with container.sessions() as s:
        decided = s.scalars(select(Decision.payment_ref).where(
            Decision.request_kind == "overpayment")).all()
    assert set(decided) <= {f"SECOND-{key}"}
    return bool(decided)



# Started 21:20 UTC on 10 October 2026: periods begin at 00:00 UTC on the 9th of each month.
STARTED = datetime(2026, 10, 10, 21, 20, tzinfo=UTC)
NEXT_PERIOD = datetime(2026, 11, 9, tzinfo=UTC)


@pytest.mark.parametrize(("second", "repeats"), [
    (NEXT_PERIOD - timedelta(minutes=30), True),
    (NEXT_PERIOD + timedelta(minutes=30), False),
], ids=["half an hour before the next period", "half an hour into it"])
def test_a_period_begins_at_midnight_utc(client, container, paypal_refunds, second, repeats):
    assert _second_payment_repeats(client, container, "midnight", STARTED,
                                   STARTED + timedelta(minutes=5), second) is repeats


def test_periods_are_counted_on_utc_dates_whatever_the_machines_zone(
        client, container, paypal_refunds, new_york):
    """Started 02:00 UTC on 10 October, the 9th in New York: the periods still begin on the
    9th UTC (the day before the UTC date), so a payment at noon on 8 November repeats the
    first period's; counted from the New York date they would begin on the 8th."""
    started = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)
    assert _second_payment_repeats(client, container, "zone", started,
                                   started + timedelta(minutes=5),
                                   datetime(2026, 11, 8, 12, tzinfo=UTC))


@pytest.mark.parametrize(("second", "repeats"), [
    (datetime(2025, 12, 10, tzinfo=UTC), True),
    (datetime(2026, 10, 10, tzinfo=UTC), False),
], ids=["two months in", "twelve months and a day in"])
def test_a_yearly_subscriptions_period_is_twelve_months(client, container, paypal_refunds,
                                                        second, repeats):
    started = datetime(2025, 10, 10, 21, 20, tzinfo=UTC)  # periods from 9 October 00:00 UTC
    assert _second_payment_repeats(client, container, "yearly", started,
                                   started + timedelta(minutes=5), second,
                                   interval="year") is repeats


def test_a_payment_at_the_very_first_instant_of_a_period_is_repeated_by_another_in_it(
        client, container, paypal_refunds):
    assert _second_payment_repeats(client, container, "instant", STARTED, NEXT_PERIOD,
                                   NEXT_PERIOD + timedelta(days=1))


@pytest.mark.parametrize("untimed", ["the new sale", "the earlier sale"])
def test_a_sale_without_its_payment_time_is_compared_with_nothing(client, container,
                                                                  paypal_refunds, untimed):
    """PayPal's sale should say when it was paid; one that does not is in no period: it
    repeats nothing and nothing repeats it, and its event is applied, not failed."""
    scenario = samples.Scenario(key=f"untimed-{untimed[4:7]}", amount=2000,
                                payment_method="paypal")
    sub = scenario.paypal_subscription_id
    earlier = paypal_payment("theopenhost", f"EARLIER-{scenario.key}", sub,
                             STARTED + timedelta(minutes=5))
    if untimed == "the earlier sale":
        earlier.paid_at = None
    add_in_order(container,
                 Subscription(merchant="theopenhost", provider="paypal", provider_id=sub,
                              version_at=STARTED, version_event=f"evt_{sub}", status="active",
                              customer_ref="payer-untimed", currency="USD", started_at=STARTED),
                 earlier)
    at = (STARTED + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sale = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=2,
                                event_id=f"WH-NEW-{scenario.key}", id=f"NEW-{scenario.key}",
                                create_time=at, update_time=at)
    if untimed == "the new sale":
        del sale["resource"]["create_time"]
    else:
        sale["resource"]["create_time"] = at
    deliver(client, sale)
    run_worker(container)
    assert inbox_outcome(container, sale["id"]) == ("processed", None)
    with container.sessions() as s:
        assert s.scalars(select(Decision)).all() == []
