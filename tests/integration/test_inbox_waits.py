"""The inbox's waits for locks are bounded (the web tier's GATEWAY_WEB_DB_WAIT): SQLite's write
lock held by another connection, or the file lock beside the database held by another web
process, fails each delivery within its wait, however many queue behind it; once free, the
next delivery is stored.

On a SQLite file of the test's own, whatever TEST_DATABASE_URL says: the locks are SQLite's.
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from gateway.envelope import Envelope
from ledger.db import limit_waits, make_engine, wait_limit, waiting_until
from ledger.inbox import new_event_row, store_event
from ledger.migrate import upgrade
from service.config import load_settings
from service.errors import InboxUnavailable
from tests.support.outages import sqlite_write_lock

WAIT = 1.0


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A SQLite ledger with the workers' long busy timeout, in a process limited to ``WAIT``."""
    url = f"sqlite:///{tmp_path / 'waits.db'}"
    upgrade(url)
    made = make_engine(url, busy_timeout=30)
    limit_waits(WAIT)
    try:
        yield made
    finally:
        limit_waits(None)
        made.dispose()


def _row(event_id: str) -> dict[str, Any]:
    merchant = load_settings({}).merchant("theopenhost")
    assert merchant is not None
    envelope = Envelope(event_id, "PAYMENT.SALE.COMPLETED", None, f"sale-{event_id}", None)
    return new_event_row(merchant=merchant, provider="paypal", envelope=envelope,
                         livemode=False, raw=b"{}", headers={}, partition=0)


def _store_at_once(engine: Engine, ids: list[str]) -> list[tuple[Any, float]]:
    """Each id stored from its own thread, started together: (result or error, seconds)."""
    out: list[tuple[Any, float]] = [(None, 0.0)] * len(ids)
    start = threading.Barrier(len(ids))

    def store(i: int) -> None:
        start.wait()
        began = time.monotonic()
        try:
            result: Any = store_event(engine, _row(ids[i]))
        except Exception as exc:  # the test looks at which failed, and when
            result = exc
        out[i] = (result, time.monotonic() - began)

    threads = [threading.Thread(target=store, args=(i,)) for i in range(len(ids))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_the_process_limit_bounds_the_engines_busy_timeout(engine):
    """The engine says 30 s; the process's limit says less, and wins."""
    assert wait_limit(engine) == WAIT
    limit_waits(None)
    assert wait_limit(engine) == 30
    limit_waits(WAIT)


def test_a_held_write_lock_fails_every_queued_delivery_within_its_wait(engine):
    """Eight deliveries at once against a held write lock: the first group waits its second,
    and the groups queued behind it do not wait a second more each."""
    with sqlite_write_lock(str(engine.url.database)):
        answers = _store_at_once(engine, [f"WH-locked-{i}" for i in range(8)])
    for result, took in answers:
        assert isinstance(result, OperationalError | InboxUnavailable), result
        assert took < WAIT + 1.0, f"failed after {took:.2f} s"
    assert not store_event(engine, _row("WH-locked-0")).duplicate  # free again: stored


def test_another_processs_file_lock_fails_the_delivery_within_its_wait(engine):
    """The lock file beside the database, held by another web process (here another open file,
    which flock treats the same): the delivery gives up at its deadline, with a 503's error."""
    with open(f"{engine.url.database}.write-lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        answers = _store_at_once(engine, [f"WH-flock-{i}" for i in range(3)])
        fcntl.flock(held, fcntl.LOCK_UN)
    for result, took in answers:
        assert isinstance(result, InboxUnavailable), result
        assert WAIT - 0.1 < took < WAIT + 1.0, f"failed after {took:.2f} s"
    assert not store_event(engine, _row("WH-flock-0")).duplicate


def test_a_deadline_already_past_still_tries_once(engine):
    """Nothing holds the lock: a transaction begun past its deadline does not wait, and
    succeeds."""
    with waiting_until(time.monotonic() - 1), engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT 1").scalar() == 1
