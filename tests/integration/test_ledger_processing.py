"""From the inbox to the ledger: duplicates and shuffled deliveries converge to one state."""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from ledger.db import limit_waits
from ledger.models import InboxEvent, InboxStatus, Invoice, Payment, Refund, Subscription
from sandbox import samples
from service.bootstrap import Container
from tests.support.delivery import (
    deliver,
    drain_everything,
    failing_sale_event,
    run_worker,
    settle,
)
from tests.support.ledger import snapshot
from tests.support.outages import sqlite_write_lock
from tests.support.paypal import shared_signer
from workers.drain import process_batch

LIFECYCLES = {
    "stripe": lambda key: samples.stripe_lifecycle(samples.Scenario(key=key)),
    "paypal": lambda key: samples.paypal_lifecycle(samples.Scenario(key=key,
                                                                    payment_method="paypal")),
}


def _ledger_after(client: FlaskClient, container: Container, provider: str,
                  events: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    for event in events:
        deliver(client, provider, event, shared_signer())
    drain_everything(container)
    with container.sessions() as s:
        return snapshot(s)


@pytest.mark.parametrize("provider", ["stripe", "paypal"])
def test_an_orderly_life_cycle_is_recorded_in_the_ledger(client, container, provider):
    """Every event of an orderly life cycle is processed and the objects end in their final
    state."""
    ledger = _ledger_after(client, container, provider, LIFECYCLES[provider]("orderly"))
    with container.sessions() as s:
        statuses = set(s.scalars(select(InboxEvent.status)))
        assert statuses == {InboxStatus.PROCESSED}
        sub = s.scalars(select(Subscription)).one()
        assert sub.status in ("canceled", "CANCELLED")
        payments = s.scalars(select(Payment)).all()
        assert len(payments) == 2 and all(p.amount == 1999 for p in payments)
        refund = s.scalars(select(Refund)).one()
        assert refund.amount > 0 and refund.payment_ref in {p.provider_id for p in payments}
    assert ledger["customers"]


@pytest.mark.parametrize("provider", ["stripe", "paypal"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_five_shuffled_deliveries_leave_the_ledger_as_one_orderly_delivery(
        client, container, provider, seed):
    """Each event delivered five times in a random order converges to the orderly ledger."""
    events = LIFECYCLES[provider](f"shuffle-{seed}")
    orderly = _ledger_after(client, container, provider, events)
    from tests.conftest import _clean

    _clean(container)
    storm = [e for e in events for _ in range(5)]
    random.Random(seed).shuffle(storm)
    assert _ledger_after(client, container, provider, storm) == orderly


def test_a_stripe_invoice_is_recorded_with_amounts_and_dates(client, container):
    """invoice.paid fills status, amounts, number, subscription and paid time."""
    scenario = samples.Scenario(key="inv")
    deliver(client, "stripe", samples.stripe_event("invoice.paid", scenario))
    run_worker(container)
    with container.sessions() as s:
        inv = s.scalars(select(Invoice)).one()
    assert inv.status == "paid" and inv.amount_paid == 1999 and inv.currency == "USD"
    assert inv.subscription_ref == scenario.subscription_id and inv.paid_at is not None


def test_a_handler_failure_is_retried_then_dead_lettered_with_its_traceback(client, container):
    """An event that keeps failing goes RETRY with backoff, then DEAD with error and traceback."""
    deliver(client, "paypal", failing_sale_event("broken"), shared_signer())
    run_worker(container)
    with container.sessions() as s:
        row = s.scalars(select(InboxEvent)).one()
        assert row.status == InboxStatus.RETRY and row.attempts == 1
        assert row.next_attempt_at > row.received_at
        first_retry = row.next_attempt_at
    later = first_retry + timedelta(hours=2)
    process_batch(container, [row.id], now=later)
    process_batch(container, [row.id], now=later + timedelta(hours=2))
    with container.sessions() as s:
        row = s.scalars(select(InboxEvent)).one()
    assert row.status == InboxStatus.DEAD and row.attempts == 3
    assert "has no amount" in row.last_error and "Traceback" in row.last_traceback


@contextmanager
def _invoices_unwritable(container: Container) -> Iterator[None]:
    """Another connection holds what the drain needs: PostgreSQL's invoices table locked
    exclusively, or SQLite's write lock."""
    if container.engine.dialect.name == "sqlite":
        with sqlite_write_lock(str(container.engine.url.database)):
            yield
        return
    with container.engine.connect() as other, other.begin():
        other.execute(text("LOCK TABLE invoices IN ACCESS EXCLUSIVE MODE"))
        yield


def test_a_database_error_fails_the_batch_and_costs_the_event_no_attempt(
        client, container, other_container):
    """When the database gives up on the drain (a lock it waited for, SQLite's write lock held
    elsewhere), even in the event-by-event pass, the batch fails and its event stays pending
    with no attempt counted and no error kept: an outage never dead-letters a sound event."""
    deliver(client, "stripe", samples.stripe_event("invoice.paid", samples.Scenario(key="lk")))
    settle(container)
    with container.sessions() as s:
        row_id = s.scalars(select(InboxEvent.id)).one()
    limit_waits(0.5)  # a worker whose waits for a lock end (an engine made from here on)
    try:
        impatient = other_container(container.settings.database_url, container.redis_url)
        with _invoices_unwritable(container), pytest.raises(OperationalError):
            process_batch(impatient, [row_id])
    finally:
        limit_waits(None)
    with container.sessions() as s:
        row = s.get(InboxEvent, row_id)
        assert (row.status, row.attempts, row.last_error) == (InboxStatus.PENDING, 0, None)
    assert process_batch(container, [row_id]) == 1  # the outage over, it is applied at once
    with container.sessions() as s:
        row = s.get(InboxEvent, row_id)
        assert (row.status, row.attempts) == (InboxStatus.PROCESSED, 1)
        assert s.scalars(select(Invoice)).one().status == "paid"


def test_a_failing_event_backs_off_doubling_from_the_base_up_to_an_hour(
        client, container, other_container):
    """Retry n waits base x 2^(n-1) after the attempt that failed (base 600 s: 10, 20, 40
    minutes), never more than an hour (then 60, 60), and the error is kept with its type."""
    deliver(client, "paypal", failing_sale_event("backoff"), shared_signer())
    settle(container)
    with container.sessions() as s:
        row_id = s.scalars(select(InboxEvent.id)).one()
    patient = other_container(container.settings.database_url, container.redis_url,
                              retry_base_seconds=600, max_attempts=6)
    now = datetime(2030, 1, 1, tzinfo=UTC)
    waits = []
    for _ in range(5):
        assert process_batch(patient, [row_id], now=now) == 1
        with container.sessions() as s:
            row = s.get(InboxEvent, row_id)
        assert row.status == InboxStatus.RETRY and row.last_error.startswith("ValueError: ")
        waits.append(row.next_attempt_at - now)
        now = row.next_attempt_at
    assert waits == [timedelta(minutes=m) for m in (10, 20, 40, 60, 60)]
    process_batch(patient, [row_id], now=now)
    with container.sessions() as s:
        row = s.get(InboxEvent, row_id)
    assert (row.status, row.attempts, row.next_attempt_at) == (InboxStatus.DEAD, 6, None)


def test_a_retry_is_not_run_before_it_is_due(client, container):
    """A failed event waits for its backoff; handing it out early does nothing."""
    deliver(client, "paypal", failing_sale_event("early"), shared_signer())
    run_worker(container)
    with container.sessions() as s:
        row = s.scalars(select(InboxEvent)).one()
    before_due = row.next_attempt_at - timedelta(milliseconds=1)
    assert process_batch(container, [row.id], now=before_due) == 0
    assert process_batch(container, [row.id], now=row.next_attempt_at) == 1


def test_an_unknown_event_type_is_stored_and_ignored(client, container):
    """A type without a route is kept in the inbox as ignored and changes nothing."""
    event = samples.stripe_event("charge.succeeded", samples.Scenario(key="odd"))
    event["type"] = "customer.tax_id.created"
    deliver(client, "stripe", event)
    run_worker(container)
    with container.sessions() as s:
        row = s.scalars(select(InboxEvent)).one()
        assert row.status == InboxStatus.IGNORED and row.status_reason
        assert s.scalars(select(Payment)).all() == []
