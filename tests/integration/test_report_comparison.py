"""How the report compares a ledger entry with the provider's record, and what it says when they
differ. Statuses compare by class (settled, failed, pending), whatever the case or the
provider's word for it, the same in SQL (which keeps agreeing rows in the database) as in
Python (which says what differs). A discrepancy names the provider, both amounts, the event
behind our entry and when it happened, in UTC."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone

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


def _paid(container: Container, provider_id: str, status: str, provider: str = "stripe",
          event: str | None = None) -> None:
    with container.sessions() as session, session.begin():
        session.add(Payment(
            merchant=MERCHANT, provider=provider, provider_id=provider_id, version_at=PAID_AT,
            version_rank=0, version_event=event or f"evt_{provider_id}", livemode=False,
            kind="charge", status=status, amount=2500, currency="USD", paid_at=PAID_AT))


def _record(provider_id: str, status: str, amount: int = 2500, provider: str = "stripe",
            at: datetime = PAID_AT) -> ProviderRecord:
    return ProviderRecord(provider, RecordKind.PAYMENT, provider_id, amount, "USD", status, at)


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


def test_a_discrepancy_says_whose_what_and_by_how_much(container: Container) -> None:
    """An amount that differs: the provider and id, our amount and theirs, by how much (ours
    less theirs), the event behind our entry and when it was paid. One the provider does not
    have: the same, without their amount. A ledger entry written from the provider's API (not
    an event) links to no event."""
    _paid(container, "PAY-AMOUNT", "completed", provider="paypal", event="WH-AMOUNT")
    _paid(container, "ch_missing", "succeeded", event="api:charge")
    report = build_report(container, MERCHANT, date(2026, 7, 1), date(2026, 8, 1),
                          [_record("PAY-AMOUNT", "completed", amount=2200, provider="paypal")])
    found = {d.provider_id: d for d in report["discrepancies"]}
    amount = found["PAY-AMOUNT"]
    assert (amount.kind, amount.provider, amount.currency, amount.ledger_amount,
            amount.provider_amount, amount.detail, amount.event_id, amount.occurred_at) == (
        DiscrepancyKind.AMOUNT_MISMATCH, "paypal", "USD", 2500, 2200,
        "payment amounts differ by 300", "WH-AMOUNT", PAID_AT)
    missing = found["ch_missing"]
    assert (missing.kind, missing.provider, missing.ledger_amount, missing.provider_amount,
            missing.detail, missing.event_id, missing.occurred_at) == (
        DiscrepancyKind.MISSING_AT_PROVIDER, "stripe", 2500, None,
        "payment in the ledger has no provider record", None, PAID_AT)


def test_a_provider_record_in_another_time_zone_is_reported_at_its_utc_instant(
        container: Container) -> None:
    """A record stamped 01:30 on 1 August at +02:00 (an export in local time) happened at 23:30
    on 31 July UTC: a missed webhook is reported at that instant."""
    local = datetime(2026, 8, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))  # 31 July UTC
    report = build_report(container, MERCHANT, date(2026, 7, 1), date(2026, 8, 1),
                          [_record("ch_local_time", "succeeded", at=local)])
    [missed] = report["discrepancies"]
    assert (missed.kind, missed.provider, missed.ledger_amount, missed.provider_amount) == (
        DiscrepancyKind.MISSING_IN_LEDGER, "stripe", None, 2500)
    assert missed.occurred_at == datetime(2026, 7, 31, 23, 30, tzinfo=UTC)
    assert missed.detail == ("payment the provider reports (api) is not in the ledger: a "
                             "webhook was missed")


def test_the_machines_time_zone_changes_no_instant(container: Container, monkeypatch) -> None:
    """A report run on a machine set to another time zone stages and reports the same UTC
    instants."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        local = datetime(2026, 8, 1, 1, 30, tzinfo=timezone(timedelta(hours=2)))
        report = build_report(container, MERCHANT, date(2026, 7, 1), date(2026, 8, 1),
                              [_record("ch_machine_zone", "succeeded", at=local)])
    finally:
        monkeypatch.undo()
        time.tzset()
    [missed] = report["discrepancies"]
    assert missed.occurred_at == datetime(2026, 7, 31, 23, 30, tzinfo=UTC)
