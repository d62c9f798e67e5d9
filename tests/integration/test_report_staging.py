"""Staging provider records for a report: a batch the database refuses fails the report with
the database's own reason, leaves none of its rows behind, and leaves the ledger usable."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, date, datetime
from typing import Any, cast

import pytest
from sqlalchemy import Table, func, select

from ledger.models import StagedProviderRecord
from reports.build import build_report, period
from reports.reconcile import BATCH, Run, _BatchWriter
from reports.records import ProviderRecord, RecordKind
from service.bootstrap import Container

MERCHANT = "theopenhost"
AT = datetime(2026, 8, 3, tzinfo=UTC)
_STAGED = cast(Table, StagedProviderRecord.__table__)


def _record(provider_id: Any) -> ProviderRecord:
    return ProviderRecord("stripe", RecordKind.PAYMENT, provider_id, 100, "USD", "succeeded", AT)


def _staged_rows(container: Container) -> int:
    with container.engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(_STAGED)) or 0)


def test_a_refused_batch_fails_with_the_databases_reason_and_stages_nothing(
        container: Container) -> None:
    """A record without an id (NOT NULL): the report fails saying so, the rows of its batch
    before it are not left staged, and the next report on the same database runs."""
    start, end = period(date(2026, 8, 1), date(2026, 9, 1))
    run = Run(container.engine, MERCHANT, start, end)
    with pytest.raises(Exception) as refused:
        run.stage([_record("ch_staged_ok_1"), _record("ch_staged_ok_2"), _record(None)])
    message = str(refused.value).lower()
    assert "null" in message and "provider_id" in message, message
    assert _staged_rows(container) == 0
    run.close()

    report = build_report(container, MERCHANT, date(2026, 8, 1), date(2026, 9, 1),
                          [_record("ch_staged_after")])
    assert [d.provider_id for d in report["discrepancies"]] == ["ch_staged_after"]
    assert _staged_rows(container) == 0  # the run's rows are dropped when it ends


def test_many_batches_are_all_staged_and_counted(container: Container) -> None:
    """More records than one batch holds: every one is staged (the database holds them all),
    the count returned is theirs, and progress is reported after each batch, cumulatively."""
    start, end = period(date(2026, 8, 1), date(2026, 9, 1))
    run = Run(container.engine, MERCHANT, start, end)
    total = 2 * BATCH + 3
    seen: list[tuple[str, int]] = []
    try:
        staged = run.stage((_record(f"ch_many_{i}") for i in range(total)),
                           progress=lambda what, n: seen.append((what, n)))
        assert staged == total
        assert _staged_rows(container) == total
        assert seen == [("staged provider records", n) for n in (BATCH, 2 * BATCH, total)]
    finally:
        run.close()


def test_a_batch_refused_early_fails_the_staging_without_waiting_for_the_rest(
        container: Container) -> None:
    """The writer refuses the first batch while the reader still has several to hand it: the
    staging fails with the database's reason, promptly, and does not hang on a full queue."""
    start, end = period(date(2026, 8, 1), date(2026, 9, 1))
    run = Run(container.engine, MERCHANT, start, end)
    records = itertools.chain([_record(None)],
                              (_record(f"ch_after_{i}") for i in range(4 * BATCH)))
    outcome: list[BaseException] = []

    def stage() -> None:
        try:
            run.stage(records)
        except Exception as exc:  # the database's refusal, handed to the reader
            outcome.append(exc)

    worker = threading.Thread(target=stage, daemon=True)
    worker.start()
    worker.join(timeout=120)
    try:
        assert not worker.is_alive(), "staging hung after the writer failed"
        assert outcome and "null" in str(outcome[0]).lower()
    finally:
        run.close()


def test_a_writer_that_failed_drains_what_the_reader_hands_it_so_neither_blocks() -> None:
    """The insert fails while the reader is blocked on a full queue, with more to hand over:
    the writer keeps taking batches (inserting none), so the reader's next hand-over raises
    the writer's error, and closing (as ``Run.stage`` always does) neither hangs nor hides it."""
    inserted: list[list[tuple[Any, ...]]] = []

    def insert(batch: list[tuple[Any, ...]]) -> None:
        inserted.append(batch)
        time.sleep(0.3)  # the reader fills the queue and blocks meanwhile
        raise OSError("disk full")

    writer = _BatchWriter(insert, None)
    raised: list[BaseException] = []

    def read() -> None:
        try:
            try:
                for n in range(10):
                    writer.put([(n,)])
            finally:
                writer.close()
        except OSError as exc:
            raised.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "the reader blocked on a writer that stopped taking batches"
    assert [str(exc) for exc in raised] == ["disk full"]
    assert inserted == [[(0,)]]  # nothing after the failure
