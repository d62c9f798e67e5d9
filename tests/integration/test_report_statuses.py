"""How the report compares a ledger entry's status with the provider's: by class (settled,
failed, pending), whatever the case or the provider's word for it, the same in SQL (which keeps
agreeing rows in the database) as in Python (which says what differs)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import literal, select

from ledger.models import Payment
from reports.build import build_report
from reports.reconcile import _status_sql, status_class
from reports.records import DiscrepancyKind, ProviderRecord, RecordKind
from service.bootstrap import Container

MERCHANT = "theopenhost"
PAID_AT = datetime(2026, 7, 10, 9, tzinfo=UTC)

SETTLED = ("succeeded", "completed", "COMPLETED", "paid", "refunded", "Partially_Refunded")
FAILED = ("failed", "denied", "canceled", "CANCELLED", "reversed", "declined")
PENDING = ("pending", "PENDING", "processing", "requires_action", "in_progress", "", "unknown")


@pytest.mark.parametrize(("statuses", "expected"), [
    (SETTLED, "settled"), (FAILED, "failed"), (PENDING, "pending")])
def test_status_classes(statuses: tuple[str, ...], expected: str) -> None:
    """Money moved, money that will not move, and everything else (not yet, or unknown)."""
    assert {status: status_class(status) for status in statuses} == dict.fromkeys(
        statuses, expected)


def test_sql_classifies_every_status_as_python_does(container: Container) -> None:
    """The report keeps agreeing rows in the database by classifying there: the two must never
    disagree, or a row would be left out as agreeing and never compared."""
    with container.engine.connect() as conn:
        for status in SETTLED + FAILED + PENDING:
            assert conn.scalar(select(_status_sql(literal(status)))) == status_class(status), \
                status


def _paid(container: Container, provider_id: str, status: str) -> None:
    with container.sessions() as session, session.begin():
        session.add(Payment(
            merchant=MERCHANT, provider="stripe", provider_id=provider_id, version_at=PAID_AT,
            version_rank=0, version_event=f"evt_{provider_id}", livemode=False, kind="charge",
            status=status, amount=2500, currency="USD", paid_at=PAID_AT))


def _record(provider_id: str, status: str) -> ProviderRecord:
    return ProviderRecord("stripe", RecordKind.PAYMENT, provider_id, 2500, "USD", status,
                          PAID_AT)


def test_a_status_of_another_class_is_a_mismatch_and_the_same_class_is_not(
        container: Container) -> None:
    """Settled here and pending there, failed here and pending there, settled here and failed
    there: each a status mismatch. Succeeded here and paid there, COMPLETED here and completed
    there: the same class, so they agree."""
    pairs = {"ch_settled_pending": ("succeeded", "pending"),
             "ch_failed_pending": ("failed", "pending"),
             "ch_settled_failed": ("succeeded", "failed"),
             "ch_pending_settled": ("pending", "succeeded"),
             "ch_paid": ("succeeded", "paid"),
             "ch_upper": ("COMPLETED", "completed")}
    for provider_id, (ours, _) in pairs.items():
        _paid(container, provider_id, ours)
    report = build_report(container, MERCHANT, date(2026, 7, 1), date(2026, 8, 1),
                          [_record(pid, theirs) for pid, (_, theirs) in pairs.items()])
    found = {d.provider_id: d for d in report["discrepancies"]}
    assert sorted(found) == ["ch_failed_pending", "ch_pending_settled", "ch_settled_failed",
                             "ch_settled_pending"]
    assert {d.kind for d in found.values()} == {DiscrepancyKind.STATUS_MISMATCH}
    assert found["ch_settled_pending"].detail == "succeeded here, pending at the provider"
    assert report["currencies"]["USD"]["matched"] == 2
    assert report["currencies"]["USD"]["discrepancies"] == 4


def test_gross_charges_count_every_settled_payment_refunded_since_or_not(
        container: Container) -> None:
    """A payment refunded after it was captured was still captured: a PayPal sale that reads
    "refunded" or "partially_refunded", a v2 capture "REFUNDED", count in the gross charges
    (their refunds are counted apart). Pending, failed and reversed payments do not."""
    for provider_id, status in [("pay_succeeded", "succeeded"), ("pay_completed", "COMPLETED"),
                                ("pay_refunded", "refunded"),
                                ("pay_partly", "partially_refunded"),
                                ("pay_v2_refunded", "REFUNDED"), ("pay_pending", "pending"),
                                ("pay_failed", "failed"), ("pay_reversed", "reversed")]:
        _paid(container, provider_id, status)
    report = build_report(container, MERCHANT, date(2026, 7, 1), date(2026, 8, 1), [])
    assert report["currencies"]["USD"]["gross_charges"] == 5 * 2500
