"""Two payments of one PayPal account, on two of its subscriptions, applied at the same moment
by the workers of two partitions (PostgreSQL): the account's credit is used by one of them, once.

Deterministic as in test_stripe_overpayment_race: a trigger holds the first payment's
transaction open after its reaction has used the credit and before it commits, while the second
is applied in another thread. Without the account's credit lock the second would read the credit
as unused and apply it again."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import responses
from sqlalchemy import select

from adapters import ledger_credit
from ledger.models import AccountCredit, InboxEvent
from sandbox import samples
from tests.integration.test_credit_applied import (
    DAY,
    MERCHANT,
    _credit_then_payment,
    _token,
)
from tests.support.delivery import run_worker, settle
from tests.support.paypal import deliver, sale_at
from workers.drain import process_batch


@responses.activate
def test_two_payments_of_one_account_applied_side_by_side_use_its_credit_once(
        client, container, hold_commit):
    _token()
    payer, first_sale = _credit_then_payment(client, container, "race-credit")
    other = samples.Scenario(key="race-credit-2", amount=2000, payment_method="paypal",
                             period_start=int(time.time()) - 49 * DAY)
    deliver(client, samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED", other,
                                       subscriber={"payer_id": payer}))
    second = sale_at(other, 3, datetime.now(UTC) + timedelta(seconds=3), "RACE-SECOND")
    deliver(client, second)
    settle(container)  # stored in the inbox table, applied by no one yet
    with container.sessions() as s:
        pending = dict(s.execute(select(InboxEvent.event_id, InboxEvent.id).where(
            InboxEvent.status != "processed")).all())
        first_event = s.scalars(select(InboxEvent.event_id).where(
            InboxEvent.id.in_(pending.values()), InboxEvent.event_type == "PAYMENT.SALE.COMPLETED",
            InboxEvent.event_id != second["id"])).one()
    subscription_events = [i for e, i in pending.items() if e not in (first_event, second["id"])]
    process_batch(container, subscription_events)  # the second subscription, known first
    hold_commit(first_event)
    held = threading.Thread(target=process_batch, args=(container, [pending[first_event]]))
    held.start()
    time.sleep(0.5)  # the first payment has used the credit and is held before its commit
    process_batch(container, [pending[second["id"]]])
    held.join()
    run_worker(container)
    with container.sessions() as s:
        uses = s.scalars(select(AccountCredit).where(AccountCredit.amount < 0)).all()
        balance = ledger_credit.balance(s, MERCHANT, payer, "USD").amount
    assert [(u.amount, u.applied_to) for u in uses] == [(-1900, first_sale)]
    assert balance == 0
