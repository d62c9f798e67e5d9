"""A credit_application's Case names, for each credit it draws on, what was left of it before
this payment (an auditor replaying the decision reads it), not what was first granted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import responses
from sqlalchemy import select

from ledger.models import Decision
from tests.integration.test_credit_applied import _credited, _token
from tests.support.delivery import run_worker
from tests.support.paypal import deliver, sale_at


@responses.activate
def test_a_second_use_of_a_credit_names_what_was_left_of_it(client, container):
    _token()
    scenario = _credited(client, container, "credit-left", days_ago=79)  # 19.00 of credit
    small = sale_at(scenario, 3, datetime.now(UTC) + timedelta(seconds=2), "SMALL-credit-left")
    small["resource"]["amount"] = {"total": "10.00", "currency": "USD"}
    deliver(client, small)
    after = datetime.now(UTC) + timedelta(seconds=3)
    deliver(client, sale_at(scenario, 4, after, "NEXT-credit-left"))
    run_worker(container)
    with container.sessions() as s:
        cases = {d.payment_ref: d.case for d in s.scalars(select(Decision).where(
            Decision.request_kind == "credit_application"))}
    assert [(c["left"]["amount"], c["applied"]["amount"])
            for c in cases["SMALL-credit-left"]["credits"]] == [(1900, 1000)]
    assert [(c["left"]["amount"], c["applied"]["amount"])
            for c in cases["NEXT-credit-left"]["credits"]] == [(900, 900)]
