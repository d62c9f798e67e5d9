"""Seed 003 (TheOpenHost) §1.2: cancellation procedure, outstanding invoices, 3-day notice."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from policy import Outcome

from .builders import T0, case, decide, failed, identity, invoices, order

DAY = timedelta(days=1)
DUE = T0 + 31 * DAY
PAID = invoices(("INV-1", T0 - 31 * DAY, True), ("INV-2", T0, True), ("INV-3", T0 + DAY, True))


def cancellation(at: datetime, ident: dict[str, Any] | None = None,
                 account_invoices: list[dict[str, Any]] | None = None,
                 **request_extra: Any) -> dict[str, Any]:
    extra = {"identity": ident if ident is not None else identity()} | request_extra
    data = case("cancellation", at, request_extra=extra,
                order=order(next_billing_at=DUE.isoformat(), addons=["domain_reseller"]))
    data["account"] = {"invoices": PAID if account_invoices is None else account_invoices}
    return data


# DUE is 09:00 UTC on 1 April: three calendar days before it is 29 March, any time of day.
@pytest.mark.parametrize(("before", "outcome", "effective", "charge"), [
    (3 * DAY, Outcome.CANCEL_AT_PERIOD_END, DUE, 0),
    (2 * DAY + timedelta(hours=9, seconds=1), Outcome.CANCEL_AT_PERIOD_END, DUE, 0),
    (2 * DAY + timedelta(hours=9), Outcome.CANCEL_NEXT_PERIOD, DUE + 30 * DAY, 12000),
], ids=["exactly 3 days before", "the last second of the third day before",
        "the first second of the second day before"])
def test_cancellation_needs_3_days_notice_before_the_invoice_is_due(
        before: timedelta, outcome: Outcome, effective: datetime, charge: int) -> None:
    """Late notice means one more full month is charged (1.2d, 1.2e); the 3 days are calendar
    days on the merchant's calendar (UTC here)."""
    d = decide("theopenhost", cancellation(DUE - before), now=DUE - before)
    assert d.outcome is outcome
    assert d.effective_at == effective
    assert d.charge.amount == charge


@pytest.mark.parametrize(("ident", "missing"), [
    ({"main_domain": None}, "main_domain"),
    ({"invoice_number": None}, "invoice_number"),
    ({"date_of_birth": None}, "date_of_birth"),
], ids=["no domain", "no invoice number", "no date of birth"])
def test_a_cancellation_without_the_required_details_is_blocked(ident: dict[str, Any],
                                                                missing: str) -> None:
    """Domain, a recent invoice number and date of birth are all required (1.2, 1.2a)."""
    d = decide("theopenhost", cancellation(T0 + 2 * DAY, identity(**ident)))
    assert d.outcome is Outcome.CANCEL_BLOCKED
    assert failed(d) == {"003 §1.2", "003 §1.2a"}
    assert any(missing in r.detail for r in d.reasons if not r.holds)


def test_an_invoice_number_older_than_the_last_three_is_refused() -> None:
    """Only one of the last 3 invoice numbers identifies the account."""
    history = invoices(("INV-0", T0 - 62 * DAY, True), *[(n, d, True) for n, d in
                       [("INV-1", T0 - 31 * DAY), ("INV-2", T0), ("INV-3", T0 + DAY)]])
    ok = decide("theopenhost", cancellation(T0 + 2 * DAY, identity(invoice_number="INV-1"),
                                            account_invoices=history))
    old = decide("theopenhost", cancellation(T0 + 2 * DAY, identity(invoice_number="INV-0"),
                                             account_invoices=history))
    assert ok.outcome is Outcome.CANCEL_AT_PERIOD_END
    assert old.outcome is Outcome.CANCEL_BLOCKED


def test_an_account_with_a_due_invoice_cannot_be_cancelled_and_all_failures_are_listed() -> None:
    """Outstanding debts block cancellation (1.2c), listed together with missing details."""
    unpaid = invoices(("INV-2", T0, True), ("INV-3", T0 + DAY, False))
    d = decide("theopenhost", cancellation(T0 + 2 * DAY, identity(date_of_birth=None),
                                           account_invoices=unpaid), now=T0 + 2 * DAY)
    assert d.outcome is Outcome.CANCEL_BLOCKED
    assert failed(d) == {"003 §1.2", "003 §1.2a", "003 §1.2c"}


def test_an_invoice_issued_but_not_yet_due_does_not_block_cancellation() -> None:
    """Only invoices whose due date has arrived are due or overdue."""
    upcoming = PAID + invoices(("INV-4", DUE, False))
    d = decide("theopenhost", cancellation(T0 + 2 * DAY, account_invoices=upcoming),
               now=T0 + 2 * DAY)
    assert d.outcome is Outcome.CANCEL_AT_PERIOD_END


def test_an_immediate_cancellation_refunds_nothing_of_the_period() -> None:
    """Immediate cancellation takes effect now, without a refund (1.2f)."""
    d = decide("theopenhost", cancellation(T0 + 2 * DAY, immediate=True), now=T0 + 2 * DAY)
    assert d.outcome is Outcome.CANCEL_IMMEDIATELY
    assert d.refund.amount == 0 and d.effective_at == T0 + 2 * DAY
    assert any(r.clause == "003 §1.2f" for r in d.reasons)


def test_cancelling_with_a_domain_reseller_forfeits_its_funds() -> None:
    """The domain reseller account is suspended and its funds forfeited (1.9)."""
    d = decide("theopenhost", cancellation(T0 + 2 * DAY), now=T0 + 2 * DAY)
    assert "domain_reseller_forfeited" in d.flags
