"""A period paid twice whose later payment arrives first: that payment takes the account's
credit (it is alone in its period so far), and when the earlier one arrives it is the earlier one
that is the second payment of the period, refunded as such, not the one the credit reduced
(whose refund would find the credit's refund already taking most of it)."""

from __future__ import annotations

import json
import re
import time
from datetime import timedelta
from typing import Any, cast

import responses
from sqlalchemy import select

from ledger.models import Action, ActionStatus, Decision, Payment
from sandbox import samples
from service.bootstrap import Container
from tests.integration.test_credit_applied import (
    DAY,
    _credit_then_payment,
    _token,
)
from tests.support.delivery import run_worker
from tests.support.paypal import deliver, sale_at


def _refunds_answered() -> None:
    def answer(req: Any) -> tuple[int, dict[str, str], str]:
        sale = cast(str, req.url).rsplit("/", 2)[-2]
        return 200, {}, json.dumps({"id": f"RF-{sale}-{len(responses.calls)}",
                                    "state": "completed", "sale_id": sale,
                                    "amount": json.loads(cast(bytes, req.body))["amount"]})
    responses.add_callback(responses.POST, re.compile(r".*/v1/payments/sale/[^/]+/refund"),
                           callback=answer)


@responses.activate
def test_the_payment_that_took_credit_is_kept_and_the_other_is_the_repeat(
        client: Any, container: Container) -> None:
    _token()
    _refunds_answered()
    _, later = _credit_then_payment(client, container, "credit-dup")
    run_worker(container)  # the period's later payment, alone so far, takes the 19.00 of credit
    scenario = samples.Scenario(key="credit-dup", amount=2000, payment_method="paypal",
                                period_start=int(time.time()) - 49 * DAY)
    with container.sessions() as s:
        paid_at = s.scalars(select(Payment.paid_at).where(Payment.provider_id == later)).one()
    assert paid_at is not None
    earlier = sale_at(scenario, 3, paid_at - timedelta(seconds=1), "EARLIER-credit-dup")
    deliver(client, earlier)
    run_worker(container)
    with container.sessions() as s:
        kinds = {(k, p) for k, p in s.execute(select(Decision.request_kind, Decision.payment_ref))}
        refunds = {(a.payment_ref, a.amount, a.status) for a in s.scalars(select(Action).where(
            Action.payment_ref.in_([later, "EARLIER-credit-dup"])))}
    assert ("credit_application", later) in kinds
    assert ("overpayment", "EARLIER-credit-dup") in kinds and ("overpayment", later) not in kinds
    assert refunds == {(later, 1900, ActionStatus.SUCCEEDED),
                       ("EARLIER-credit-dup", 1900, ActionStatus.SUCCEEDED)}
