"""Seeds 000 (One Click managed services) and 001 (digital services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policy import Outcome

from .builders import T0, case, decide, failed, identity, invoices, iso, order

DAY = timedelta(days=1)


def oneclick_cancel(at: datetime, verified: bool | None = True,
                    account: dict[str, Any] | None = None) -> dict[str, Any]:
    data = case("cancellation", at, request_extra={"identity": identity(verified=verified)},
                order=order(product_category="managed_services", amount={"amount": 20000,
                                                                          "currency": "USD"}))
    data["account"] = account or {}
    return data


@pytest.mark.parametrize(("day", "outcome", "effective", "charge"), [
    (24, Outcome.CANCEL_AT_PERIOD_END, datetime(2025, 4, 1, tzinfo=UTC), 0),
    (25, Outcome.CANCEL_NEXT_PERIOD, datetime(2025, 5, 1, tzinfo=UTC), 20000),
], ids=["the 24th", "the 25th"])
def test_oneclick_cancellations_must_arrive_before_the_25th(day: int, outcome: Outcome,
                                                            effective: datetime,
                                                            charge: int) -> None:
    """On or after the 25th the next month is billed."""
    at = datetime(2025, 3, day, 23, 59, tzinfo=UTC)
    d = decide("oneclick", oneclick_cancel(at), now=at)
    assert (d.outcome, d.effective_at, d.charge.amount) == (outcome, effective, charge)


@pytest.mark.parametrize(("verified", "outcome"), [
    (None, Outcome.NEEDS_REVIEW), (False, Outcome.CANCEL_BLOCKED),
], ids=["not yet verified", "failed verification"])
def test_oneclick_cancellations_wait_for_verified_credentials(verified: bool | None,
                                                              outcome: Outcome) -> None:
    """Cancelling clients are authenticated first (000 §1a)."""
    at = datetime(2025, 3, 3, tzinfo=UTC)
    d = decide("oneclick", oneclick_cancel(at, verified), now=at)
    assert d.outcome is outcome and failed(d) == {"000 §1a"}


def test_a_past_due_balance_is_due_30_days_after_the_cancellation() -> None:
    """000 §4a: the balance is payable within 30 days of cancellation, then collection."""
    at = datetime(2025, 3, 3, tzinfo=UTC)
    account = {"invoices": invoices(("A-1", datetime(2025, 2, 1, tzinfo=UTC), False))}
    d = decide("oneclick", oneclick_cancel(at, account=account), now=at)
    assert d.balance_due_by == datetime(2025, 5, 1, tzinfo=UTC)
    assert any(li.kind == "past_due_balance" and li.amount.amount == 1000 for li in d.line_items)


@pytest.mark.parametrize(("reason_code", "outcome"), [
    ("non_use", Outcome.DENY), ("other", Outcome.NEEDS_REVIEW),
], ids=["not using the account", "any other reason"])
def test_oneclick_refunds_go_to_a_person_but_non_use_is_denied(reason_code: str,
                                                                outcome: Outcome) -> None:
    """000 states no automatic refund terms; non-use is not a cancellation (§4)."""
    data = case("refund", T0 + DAY, request_extra={"reason_code": reason_code}, order=order())
    d = decide("oneclick", data)
    assert d.outcome is outcome
    if outcome is Outcome.NEEDS_REVIEW:
        assert "credit_to_card" in d.flags


def service_refund(day: int, reason_code: str = "dissatisfied", state: str = "completed",
                   **order_extra: Any) -> dict[str, Any]:
    return case("refund", T0 + day * DAY, request_extra={"reason_code": reason_code},
                order=order(product_category="technical_support", service_state=state,
                            service_date=iso(T0), **order_extra))


@pytest.mark.parametrize(("day", "outcome"), [(7, Outcome.NEEDS_REVIEW), (8, Outcome.DENY)],
                         ids=["day 7", "day 8"])
def test_service_issues_must_be_reported_within_7_days(day: int, outcome: Outcome) -> None:
    """001 §1: a provider fault reported by day 7 is reviewed; on day 8 it is too late."""
    assert decide("digitalcare", service_refund(day, "provider_fault")).outcome is outcome


@pytest.mark.parametrize("code", ["user_error", "changed_requirements", "used_after_completion"])
def test_user_error_changed_requirements_and_later_use_are_never_refunded(code: str) -> None:
    """001 §1.b denies these reasons whatever the timing."""
    d = decide("digitalcare", service_refund(1, code))
    assert d.outcome is Outcome.DENY and "001 §1.b" in failed(d)


@pytest.mark.parametrize(("state", "outcome"), [
    ("not_started", Outcome.FULL_REFUND), ("initiated", Outcome.DENY),
    ("completed", Outcome.DENY),
], ids=["not started", "initiated", "completed"])
def test_services_are_non_refundable_once_initiated(state: str, outcome: Outcome) -> None:
    """001 §3: once the service has been initiated it is not refunded."""
    assert decide("digitalcare", service_refund(1, state=state)).outcome is outcome


def test_billing_errors_are_reviewed_even_after_7_days() -> None:
    """001 §2.a: billing errors are reviewed; the 7-day window is for service issues."""
    d = decide("digitalcare", service_refund(40, "billing_error"))
    assert d.outcome is Outcome.NEEDS_REVIEW and not failed(d)


def test_unused_subscription_portions_are_not_refunded() -> None:
    """001 §2.a: refunds for unused portions of subscriptions are not available."""
    d = decide("digitalcare", service_refund(1, "unused_portion"))
    assert d.outcome is Outcome.DENY and "001 §2.a" in failed(d)


def test_a_subscription_cancelled_keeps_access_until_the_cycle_ends() -> None:
    """001 §2 and §2.b: cancel any time, effective and with access to the cycle's end."""
    end = T0 + 30 * DAY
    data = case("cancellation", T0 + 5 * DAY, order=order(next_billing_at=iso(end)))
    d = decide("digitalcare", data)
    assert d.outcome is Outcome.CANCEL_AT_PERIOD_END
    assert d.effective_at == end and d.access_until == end
