"""A Stripe invoice and the charge that overpaid it, applied at the same moment by the workers of
their two partitions (PostgreSQL): the overpayment is decided once, never missed.

Deterministic: a trigger the test installs holds the first event's transaction open after its
reaction has looked for the other object and before it commits, while the second event is applied
in another thread. Without a lock between them, each would look before the other committed and
neither would decide. (The two events usually also lock their customer's row, which orders them
by accident; the charge here names none, so only the overpayment's own lock can.)"""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from ledger.models import Decision, InboxEvent
from sandbox import samples
from tests.support import stripe as sig
from tests.support.delivery import settle
from workers.drain import process_batch

DAY = 86400

@pytest.mark.parametrize("first", ["invoice.paid", "charge.succeeded"])
def test_an_overpayment_whose_two_events_are_applied_side_by_side_is_decided_once(
        client, container, hold_commit, first):
    scenario = samples.Scenario(key=f"race-{first}", amount=2500,
                                period_start=int(time.time() - 2 * DAY))
    events = {"invoice.paid": samples.stripe_event("invoice.paid", scenario, amount_due=2000),
              # No customer on the charge: the pair then shares no ledger row whose lock would
              # order them by accident; only the overpayment's own lock may.
              "charge.succeeded": samples.stripe_event("charge.succeeded", scenario,
                                                       customer=None)}
    for event in events.values():
        assert sig.post(client, event).status_code == 200
    settle(container)  # stored in the inbox table, applied by no one yet
    with container.sessions() as s:
        ids: dict[str, int] = dict(s.execute(select(InboxEvent.event_type, InboxEvent.id)).all())
        partitions = set(s.scalars(select(InboxEvent.partition)).all())
    assert len(partitions) == 2, "the pair must be on two partitions for the test to mean much"
    hold_commit(events[first]["id"])
    second = next(t for t in events if t != first)
    held = threading.Thread(target=process_batch, args=(container, [ids[first]]))
    held.start()
    time.sleep(0.5)  # the first has looked for its partner and is held before its commit
    process_batch(container, [ids[second]])
    held.join()
    with container.sessions() as s:
        decisions = s.scalars(select(Decision).where(Decision.request_kind == "overpayment")
                              ).all()
        statuses = set(s.scalars(select(InboxEvent.status)).all())
    assert statuses == {"processed"}
    assert [(d.payment_ref, d.case["payment"]["overpaid_amount"]["amount"]) for d in decisions] \
        == [(scenario.charge_id, 500)]


def _pair(client, container, key: str) -> tuple[samples.Scenario, dict[str, int]]:
    scenario = samples.Scenario(key=key, amount=2500, period_start=int(time.time() - 2 * DAY))
    for event in (samples.stripe_event("invoice.paid", scenario, amount_due=2000),
                  samples.stripe_event("charge.succeeded", scenario, customer=None)):
        assert sig.post(client, event).status_code == 200
    settle(container)
    with container.sessions() as s:
        return scenario, dict(s.execute(select(InboxEvent.event_type, InboxEvent.id)).all())


def _overpayments(container, settled: bool = True) -> list[tuple[str, int]]:
    with container.sessions() as s:
        if settled:
            assert set(s.scalars(select(InboxEvent.status)).all()) == {"processed"}
        return [(d.payment_ref, d.case["payment"]["overpaid_amount"]["amount"])
                for d in s.scalars(select(Decision).where(Decision.request_kind == "overpayment"))]


@pytest.mark.parametrize("order", [("invoice.paid", "charge.succeeded"),
                                   ("charge.succeeded", "invoice.paid")])
def test_an_invoice_and_its_overpaying_charge_in_one_batch_are_decided_once(
        client, container, order):
    """Both events applied in one transaction, in either order: the reaction of the second
    sees the first's object (written by this transaction, not yet committed), not what the
    batch read of the pair before any event was applied (neither there then)."""
    scenario, ids = _pair(client, container, f"one-batch-{order[0]}")
    process_batch(container, [ids[t] for t in order])
    assert _overpayments(container) == [(scenario.charge_id, 500)]


@pytest.mark.parametrize("first", ["invoice.paid", "charge.succeeded"])
def test_an_overpayment_is_decided_by_the_second_of_two_batches(client, container, first):
    """One event per batch: the second's reaction finds the first's object, committed before
    its batch began, as the batch read it."""
    scenario, ids = _pair(client, container, f"two-batches-{first}")
    second = next(t for t in ids if t != first)
    process_batch(container, [ids[first]])
    assert _overpayments(container, settled=False) == []
    process_batch(container, [ids[second]])
    assert _overpayments(container) == [(scenario.charge_id, 500)]
