"""Storing deliveries from many threads at once: each caller learns its own row's fate.

The web tier's threads share one transaction per group of deliveries; these tests hold the
promises that sharing must not break: every acknowledged row is committed, a duplicate is
reported as one, and a row that cannot be stored fails only its own delivery.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from gateway.envelope import Envelope
from ledger.inbox import new_event_row, store_event
from ledger.models import InboxEvent
from service.bootstrap import Container
from service.errors import InboxUnavailable, TransmissionReused

THREADS = 24


def _row(container: Container, event_id: str, transmission: str | None = None) -> dict[str, Any]:
    merchant = container.settings.merchant("theopenhost")
    assert merchant is not None
    headers = {"Paypal-Transmission-Id": transmission} if transmission else {}
    envelope = Envelope(event_id, "PAYMENT.SALE.COMPLETED", None, f"sale-{event_id}", None)
    return new_event_row(merchant=merchant, provider="paypal", envelope=envelope, livemode=False,
                         raw=b"{}", headers=headers, partition=0)


def _store_all(container: Container, rows: list[dict[str, Any]]) -> list[Any]:
    """Store every row from its own thread, released together; each thread's result or error."""
    results: list[Any] = [None] * len(rows)
    start = threading.Barrier(len(rows))

    def store(i: int) -> None:
        start.wait()
        try:
            results[i] = store_event(container.engine, rows[i])
        except Exception as exc:  # the test looks at which rows failed
            results[i] = exc

    threads = [threading.Thread(target=store, args=(i,)) for i in range(len(rows))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _stored(container: Container) -> int:
    with container.sessions() as s:
        return s.scalar(select(func.count()).select_from(InboxEvent)) or 0


def test_concurrent_deliveries_and_their_duplicates_are_each_stored_once(container):
    rows = [_row(container, f"WH-{i % (THREADS // 2)}") for i in range(THREADS)]
    results = _store_all(container, rows)
    assert not [r for r in results if isinstance(r, Exception)]
    half = THREADS // 2
    assert sorted(r.duplicate for r in results) == [False] * half + [True] * half
    assert len({r.inbox_id for r in results}) == THREADS // 2
    assert _stored(container) == THREADS // 2


def test_a_row_that_cannot_be_stored_fails_only_its_own_delivery(container):
    store_event(container.engine, _row(container, "WH-FIRST", transmission="T-1"))
    rows = [_row(container, f"WH-{i}", transmission=f"T-other-{i}") for i in range(THREADS)]
    rows[THREADS // 2] = _row(container, "WH-FORGED", transmission="T-1")
    results = _store_all(container, rows)
    failed = [i for i, r in enumerate(results) if isinstance(r, Exception)]
    assert failed == [THREADS // 2]
    assert isinstance(results[THREADS // 2], TransmissionReused)
    assert _stored(container) == THREADS


def test_a_database_outage_fails_every_waiting_delivery(other_container, container):
    """Unreachable: every caller gets an error to answer 503 with, none a result."""
    broken = other_container("postgresql://nobody@127.0.0.1:1/none", container.redis_url)
    results = _store_all(broken, [_row(container, f"WH-{i}") for i in range(8)])
    assert all(isinstance(r, SQLAlchemyError | InboxUnavailable) for r in results)
    with pytest.raises((SQLAlchemyError, InboxUnavailable)):
        store_event(broken.engine, _row(container, "WH-again"))


def test_two_processes_storing_the_same_events_in_opposite_orders_both_succeed(
        container, other_container):
    """Two web processes (two engines, each with its own group commit) store the same events
    at once, in opposite orders, as providers' duplicate deliveries arrive: every caller gets
    its answer, none an error (on PostgreSQL, groups that took row locks in opposite orders
    would deadlock)."""
    second = other_container(container.settings.database_url, container.redis_url)
    for round_ in range(5):
        rows = [_row(container, f"WH-{round_}-{i}") for i in range(THREADS // 2)]
        results: list[Any] = []
        done = threading.Barrier(3)

        def store(engine_of: Container, ordered: list[dict[str, Any]], results: list[Any],
                  done: threading.Barrier) -> None:
            results.extend(_store_all(engine_of, ordered))
            done.wait()

        first = threading.Thread(target=store, args=(container, rows, results, done))
        other = threading.Thread(target=store,
                                 args=(second, list(reversed(rows)), results, done))
        first.start()
        other.start()
        done.wait()
        first.join()
        other.join()
        assert not [r for r in results if isinstance(r, Exception)]
        assert sorted(r.duplicate for r in results) == [False] * len(rows) + [True] * len(rows)
