"""A PayPal payment that catches up on a billing period whose own payment failed is not a second
payment for a period already paid (003 §1.7b-d): PayPal retries a declined payment days later,
and a retry that lands after its period ended shares the next period with that period's own
payment. Only a payment with no earlier period left unpaid is a repeat."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import responses
from sqlalchemy import select

from ledger.models import Decision
from sandbox import samples
from service.bootstrap import Container
from tests.integration.test_credit_applied import DAY, _token
from tests.integration.test_credit_duplicate_order import _refunds_answered
from tests.support.delivery import run_worker
from tests.support.paypal import deliver, sale_at


def _overpaid(container: Container) -> set[str | None]:
    with container.sessions() as s:
        return set(s.scalars(select(Decision.payment_ref).where(
            Decision.request_kind == "overpayment")))


@responses.activate
def test_a_retry_landing_in_the_next_period_is_not_a_repeat_but_a_third_payment_is(
        client: Any, container: Container) -> None:
    _token()
    _refunds_answered()
    scenario = samples.Scenario(key="catch-up", amount=2000, payment_method="paypal",
                                period_start=int(time.time()) - 100 * DAY)

    def cycle(n: int) -> datetime:
        return datetime.fromtimestamp(scenario.period(n)[0], UTC)

    for event in (samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", scenario),
                  sale_at(scenario, 1, cycle(1) + timedelta(hours=1)),
                  # cycle 2 declined; PayPal's retry of it landed in cycle 3, beside cycle 3's
                  sale_at(scenario, 3, cycle(3) + timedelta(hours=1)),
                  sale_at(scenario, 2, cycle(3) + timedelta(days=5))):
        deliver(client, event)
        run_worker(container)
    assert _overpaid(container) == set()

    deliver(client, sale_at(scenario, 3, cycle(3) + timedelta(days=6), "AGAIN-catch-up"))
    run_worker(container)
    assert _overpaid(container) == {"AGAIN-catch-up"}


@responses.activate
def test_periods_before_the_first_payment_are_not_owed(client: Any, container: Container
                                                       ) -> None:
    """A subscription whose first payment came a period late (a trial, say) owes nothing
    before it: two payments in the first paid period are a repeat."""
    _token()
    _refunds_answered()
    scenario = samples.Scenario(key="late-start", amount=2000, payment_method="paypal",
                                period_start=int(time.time()) - 80 * DAY)
    second = datetime.fromtimestamp(scenario.period(2)[0], UTC)
    for event in (samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", scenario),
                  sale_at(scenario, 2, second + timedelta(hours=1)),
                  sale_at(scenario, 2, second + timedelta(days=3), "TWICE-late-start")):
        deliver(client, event)
        run_worker(container)
    assert _overpaid(container) == {"TWICE-late-start"}
