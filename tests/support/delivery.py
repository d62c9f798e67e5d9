"""Delivering events to the app and running the worker side in-process, for integration tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rq import SimpleWorker
from sqlalchemy import select

from ledger.models import InboxEvent, InboxStatus
from sandbox.devcerts import DevPayPalSigner
from service.bootstrap import Container
from tests.support import stripe as stripe_sig
from tests.support.paypal import shared_signer

PAYPAL_MERCHANT = "theopenhost"
PAYPAL_WEBHOOK_ID = "WH-THEOPENHOST-SANDBOX-003"


def deliver(client: Any, provider: str, event: dict[str, Any],
            signer: DevPayPalSigner | None = None) -> Any:
    """POST one signed event as its provider would; asserts the gateway acknowledged it."""
    if provider == "stripe":
        resp = stripe_sig.post(client, event)
    else:
        assert signer is not None
        raw = stripe_sig.body_of(event)
        resp = client.post(f"/webhooks/{PAYPAL_MERCHANT}/paypal", data=raw,
                           headers=signer.headers(raw, PAYPAL_WEBHOOK_ID),
                           content_type="application/json")
    assert resp.status_code == 200, resp.json
    return resp


def failing_sale_event(key: str) -> dict[str, Any]:
    """A PayPal sale with its amount missing: its handler fails every time it runs."""
    from sandbox import samples

    event = samples.paypal_event("PAYMENT.SALE.COMPLETED",
                                 samples.Scenario(key=key, payment_method="paypal"))
    del event["resource"]["amount"]
    return event


def dead_event(client: Any, container: Container, key: str = "dead") -> InboxEvent:
    """A PayPal event in the inbox whose handler failed as often as it may: dead-lettered."""
    from workers.drain import process_batch

    deliver(client, "paypal", failing_sale_event(key), shared_signer())
    run_worker(container)
    with container.sessions() as s:
        row = s.scalars(select(InboxEvent).where(InboxEvent.event_type ==
                                                 "PAYMENT.SALE.COMPLETED")
                        .order_by(InboxEvent.id.desc())).first()
    assert row is not None
    for day in range(1, container.settings.max_attempts):  # each retry as it comes due
        process_batch(container, [row.id], now=datetime.now(UTC) + timedelta(days=day))
    with container.sessions() as s:
        row = s.get(InboxEvent, row.id)
    assert row is not None and row.status == InboxStatus.DEAD
    return row


def settle(container: Container) -> list[int]:
    """Store what the Redis inbox holds in the inbox table, as a drain does before it applies
    anything, and apply nothing yet: the ids go on their partitions' lists, for the next drain
    (as the sweeper would hand them out). Returns the inbox ids. (Database inbox: nothing.)"""
    from workers.intake import move

    ids: list[int] = []
    for partition in range(container.settings.partitions):
        while entries := container.intake.take(partition):
            moved = move(container.intake, container.engine, partition, entries)
            container.dispatcher.notify_many(partition, moved)
            ids += moved
    return ids


def run_worker(container: Container) -> None:
    """Run a real RQ worker in this process until the queue is empty."""
    SimpleWorker([container.queue], connection=container.redis).work(burst=True)


def drain_everything(container: Container) -> None:
    """Run the worker, then hand out due retries (as later sweeps would) until none are left."""
    from workers.drain import process_batch
    from workers.sweeper import sweep

    run_worker(container)
    for _ in range(10):
        with container.sessions() as s:
            waiting = s.scalars(select(InboxEvent.id).where(
                InboxEvent.status.in_([InboxStatus.PENDING, InboxStatus.RETRY]))).all()
        streamed = any(container.intake.waiting(p) for p in range(container.settings.partitions))
        if not waiting and not streamed:
            return
        # Retries come due by the clock: process them as if two hours had passed.
        process_batch(container, list(waiting), now=datetime.now(UTC) + timedelta(hours=2))
        sweep(container)
        run_worker(container)
    raise AssertionError("events still waiting after ten sweeps")
