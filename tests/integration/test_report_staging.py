"""Staging provider records for a report: a batch the database refuses fails the report with
the database's own reason, leaves none of its rows behind, and leaves the ledger usable."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, cast

import pytest
from sqlalchemy import Table, func, select

from ledger.models import StagedProviderRecord
from reports.build import build_report, period
from reports.reconcile import Run
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
