"""A worker SIGKILLed in the middle of a drain loses nothing and applies nothing twice."""

from __future__ import annotations

import os
import random
import signal
import time
from typing import Any

from sqlalchemy import func, select

from ledger.models import InboxEvent, InboxStatus
from sandbox import samples
from service.bootstrap import Container
from tests.conftest import _clean
from tests.e2e.conftest import process_env, worker_command
from tests.support.delivery import deliver, drain_everything
from tests.support.ledger import snapshot
from tests.support.paypal import shared_signer
from workers.sweeper import sweep


def _events(count: int) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(count):
        out += [("stripe", e) for e in samples.stripe_lifecycle(samples.Scenario(key=f"k{i}"))]
        paypal = samples.Scenario(key=f"p{i}", payment_method="paypal")
        out += [("paypal", e) for e in samples.paypal_lifecycle(paypal)]
    return out


def _processed(container: Container) -> int:
    with container.sessions() as s:
        return s.scalar(select(func.count()).select_from(InboxEvent)
                        .where(InboxEvent.status == InboxStatus.PROCESSED)) or 0


def test_killing_the_worker_mid_drain_leaves_the_orderly_ledger(client, container, spawn):
    """SIGKILL a real worker while it drains; a new worker and the sweeper finish the job."""
    events = _events(12)
    for provider, event in events:
        deliver(client, provider, event, shared_signer())
    drain_everything(container)
    with container.sessions() as s:
        orderly = snapshot(s)
    _clean(container)

    storm = [pe for pe in events for _ in range(2)]
    random.Random(7).shuffle(storm)
    for provider, event in storm:
        deliver(client, provider, event, shared_signer())
    env = process_env(container.settings, GATEWAY_BATCH_SIZE="3",
                      GATEWAY_DRAIN_LOCK_SECONDS="2", GATEWAY_RETRY_BASE_SECONDS="1")
    first = spawn(worker_command(), env, "worker")
    deadline = time.monotonic() + 60
    while _processed(container) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = _processed(container)
    assert 0 < killed_at < len(events), "the kill should land mid-run"

    spawn(worker_command(), env, "worker")
    deadline = time.monotonic() + 90
    while _processed(container) < len(events) and time.monotonic() < deadline:
        # What the clock does: re-push what the dead worker held, and retries as they come due.
        sweep(container)
        time.sleep(0.5)
    with container.sessions() as s:
        statuses = dict(s.execute(select(InboxEvent.status, func.count())
                                  .group_by(InboxEvent.status)).all())
        assert statuses == {InboxStatus.PROCESSED: len(events)}
        assert snapshot(s) == orderly
