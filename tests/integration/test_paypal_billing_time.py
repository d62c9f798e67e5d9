"""PayPal bills a subscription's later cycles at its own time of day on the billing date
(10:00 UTC in PayPal's own example: a subscription paid at 21:20:49 on 10 December is next billed
2019-01-10T10:00:00Z), hours before the start's time of day a month on. That renewal pays the
second period: it is not a second payment of the first."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day

import pytest
import responses
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import Action, Decision
from sandbox import samples
from service.bootstrap import Container
from tests.support.delivery import run_worker
from tests.support.paypal import deliver, sale_at

DAY = 86400


@responses.activate
@pytest.mark.parametrize(("started", "billed_days_early"), [
    (time_of_day(21, 20, 49), 0),  # PayPal's example: 10:00 UTC on the billing date
    (time_of_day(2, 0, 0), 1),  # started 2:00 UTC, billed on the date of a zone behind UTC
], ids=["same-date", "date-behind-utc"])
def test_a_renewal_billed_earlier_in_the_day_than_the_start_is_not_an_overpayment(
        client: FlaskClient, container: Container, started: time_of_day,
        billed_days_early: int) -> None:
    today = datetime.fromtimestamp(time.time() - 40 * DAY, UTC).date()
    start = datetime.combine(today, started, UTC)
    scenario = samples.Scenario(key="billing-hour", amount=2000, payment_method="paypal",
                                period_start=int(start.timestamp()))
    renewal_day = (datetime.fromtimestamp(scenario.period(2)[0], UTC)
                   - timedelta(days=billed_days_early)).date()
    renewal = datetime.combine(renewal_day, time_of_day(10), UTC)
    for event in (samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", scenario),
                  sale_at(scenario, 1, start), sale_at(scenario, 2, renewal)):
        deliver(client, event)
        run_worker(container)
    with container.sessions() as s:
        decisions = s.scalars(select(Decision)).all()
        actions = s.scalars(select(Action)).all()
    assert [(d.request_kind, d.payment_ref) for d in decisions] == []
    assert actions == []

