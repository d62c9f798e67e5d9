"""Seed 003 (TheOpenHost): overdue invoices and late fees (§1.3a-1.6, §1.14b), PayPal
overpayments (§1.7b-1.8)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from policy import Outcome

from .builders import T0, case, decide, failed, iso, money

DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def overdue(amount: int = 1000, currency: str = "USD", notified: timedelta | None = 10 * DAY,
            in_collection: bool = False, paid: bool = False) -> dict[str, Any]:
    invoice: dict[str, Any] = {"number": "INV-9", "amount": money(amount, currency),
                               "due_at": iso(T0), "paid": paid}
    if notified is not None:
        invoice["notified_at"] = iso(T0 - notified)
    data = case("overdue_invoice", T0, request_extra={"invoice_number": "INV-9"})
    data["account"] = {"invoices": [invoice], "in_collection": in_collection}
    return data


@pytest.mark.parametrize(("after", "outcome"), [
    (24 * timedelta(hours=1) - SECOND, Outcome.NO_ACTION),
    (24 * timedelta(hours=1), Outcome.LATE_FEE),
], ids=["23:59:59 after due", "exactly 24 hours after due"])
def test_an_invoice_is_overdue_once_24_hours_have_passed(after: timedelta,
                                                         outcome: Outcome) -> None:
    """1.6: 24 hours or more past the due date makes the invoice overdue."""
    assert decide("theopenhost", overdue(), now=T0 + after).outcome is outcome


@pytest.mark.parametrize(("amount", "fee"), [
    (1000, 500), (1428, 500), (1429, 500), (1430, 500), (1432, 501), (10000, 3500), (99, 500),
], ids=["$10 takes the $5 floor", "$14.28", "$14.29", "$14.30", "$14.32 passes the floor",
        "$100 pays 35%", "tiny invoice"])
def test_the_late_fee_is_35_percent_or_5_dollars_whichever_is_greater(amount: int,
                                                                       fee: int) -> None:
    """1.5, with 35% rounded down to the cent."""
    d = decide("theopenhost", overdue(amount), now=T0 + 2 * DAY)
    assert d.outcome is Outcome.LATE_FEE and d.fee.amount == fee
    assert "support_withheld" in d.flags


def test_a_late_fee_in_a_currency_without_a_floor_goes_to_review() -> None:
    """The $5.00 floor is not converted: EUR invoices wait for a person."""
    d = decide("theopenhost", overdue(currency="EUR"), now=T0 + 2 * DAY)
    assert d.outcome is Outcome.NEEDS_REVIEW and failed(d) == {"003 §1.5"}


@pytest.mark.parametrize(("notified", "outcome"), [
    (10 * DAY, Outcome.LATE_FEE), (10 * DAY - SECOND, Outcome.NEEDS_REVIEW),
    (None, Outcome.NEEDS_REVIEW),
], ids=["notified 10 days ahead", "a second short of 10 days", "notification unknown"])
def test_a_late_fee_needs_the_charge_notified_10_days_ahead(notified: timedelta | None,
                                                             outcome: Outcome) -> None:
    """1.14b: no automatic late fee on a charge not notified at least 10 days before."""
    assert decide("theopenhost", overdue(notified=notified), now=T0 + 2 * DAY).outcome is outcome


def test_a_zero_invoice_carries_no_late_fee() -> None:
    """1.5's "35% or $5.00, whichever is greater" presupposes something owed: a $0 invoice
    is never late, so it gets no $5.00 floor."""
    d = decide("theopenhost", overdue(amount=0), now=T0 + 9 * DAY)
    assert d.outcome is Outcome.NO_ACTION and d.fee.amount == 0
    assert "nothing is owed" in " ".join(r.detail for r in d.reasons)


def test_a_one_cent_invoice_still_takes_the_floor() -> None:
    """The $0 exception is exactly zero: one cent overdue pays the $5.00 minimum."""
    d = decide("theopenhost", overdue(amount=1), now=T0 + 2 * DAY)
    assert d.outcome is Outcome.LATE_FEE and d.fee.amount == 500


def test_a_paid_invoice_needs_no_action() -> None:
    """Paid invoices are never overdue."""
    assert decide("theopenhost", overdue(paid=True), now=T0 + 9 * DAY).outcome is Outcome.NO_ACTION


def test_debt_collection_notes_the_150_dollar_cap_without_charging_it() -> None:
    """1.3a allows a fee of up to $150; the decision notes it and charges only the late fee."""
    d = decide("theopenhost", overdue(in_collection=True), now=T0 + 2 * DAY)
    assert "debt_collection" in d.flags and d.fee.amount == 500
    assert any(r.clause == "003 §1.3a" and "150.00 USD" in r.detail for r in d.reasons)


def overpayment(paid_at: datetime, claim_at: datetime, over: int = 1000, provider: str = "paypal",
                subscription: bool = True, currency: str = "USD") -> dict[str, Any]:
    return case("overpayment", claim_at, payment={
        "amount": money(3000, currency), "received_at": iso(paid_at),
        "overpaid_amount": money(over, currency), "provider": provider,
        "via_subscription": subscription})


@pytest.mark.parametrize(("age", "outcome", "refund", "credit"), [
    (45 * DAY, Outcome.PARTIAL_REFUND, 950, 0),
    (45 * DAY + SECOND, Outcome.ACCOUNT_CREDIT, 0, 950),
], ids=["exactly 45 days old", "45 days and a second"])
def test_paypal_overpayments_are_refunded_up_to_45_days_then_credited(
        age: timedelta, outcome: Outcome, refund: int, credit: int) -> None:
    """1.7b/1.7c, both less the 5% administration fee of 1.7d."""
    d = decide("theopenhost", overpayment(T0, T0 + age), now=T0 + age)
    assert d.outcome is outcome
    assert (d.refund.amount, d.credit.amount, d.fee.amount) == (refund, credit, 50)


def test_the_overpayment_fee_rounds_down_in_yen() -> None:
    """5% of 999 JPY is 49.95 yen, charged as 49."""
    d = decide("theopenhost", overpayment(T0, T0 + DAY, over=999, currency="JPY"), now=T0 + DAY)
    assert d.fee.amount == 49 and d.refund.amount == 950 and d.currency == "JPY"


@pytest.mark.parametrize(("provider", "subscription"), [("stripe", True), ("paypal", False)],
                         ids=["not PayPal", "not a subscription"])
def test_overpayments_outside_paypal_subscriptions_go_to_review(provider: str,
                                                                subscription: bool) -> None:
    """1.7b covers PayPal subscriptions only."""
    d = decide("theopenhost", overpayment(T0, T0 + DAY, provider=provider,
                                          subscription=subscription), now=T0 + DAY)
    assert d.outcome is Outcome.NEEDS_REVIEW
