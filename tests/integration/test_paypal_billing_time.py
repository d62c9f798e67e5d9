"""PayPal bills a subscription's later cycles at its own time of day on the billing date
(10:00 UTC in PayPal's own example: a subscription paid at 21:20:49 on 10 December is next billed
2019-01-10T10:00:00Z), hours before the start's time of day a month on. That renewal pays the
second period: it is not a second payment of the first."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from typing import Any

import pytest
import responses
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import Action, Decision
from sandbox import samples
from service.bootstrap import Container
from tests.support.delivery import run_worker
from tests.support.paypal import shared_signer

DAY = 86400


def _post(client: FlaskClient, event: dict[str, Any]) -> None:
    raw = json.dumps(event).encode()
    resp = client.post("/webhooks/theopenhost/paypal", data=raw,
                       headers=shared_signer().headers(raw, "WH-THEOPENHOST-SANDBOX-003"),
                       content_type="application/json")
    assert resp.status_code == 200


def _sale_at(scenario: samples.Scenario, cycle: int, at: datetime) -> dict[str, Any]:
    stamp = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    event = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=cycle,
                                 create_time=stamp, update_time=stamp)
    event["resource"]["create_time"] = stamp
    return event


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
                  _sale_at(scenario, 1, start), _sale_at(scenario, 2, renewal)):
        _post(client, event)
        run_worker(container)
    with container.sessions() as s:
        decisions = s.scalars(select(Decision)).all()
        actions = s.scalars(select(Action)).all()
    assert [(d.request_kind, d.payment_ref) for d in decisions] == []
    assert actions == []

