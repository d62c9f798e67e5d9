"""The period after a late cancellation ends where the provider bills it: a due instant (a
Stripe or PayPal period end, anchored in UTC) steps a month in UTC, whatever the merchant's zone;
only a date-only due date (local midnight) steps on the merchant's calendar. An instant that is
also local midnight cannot be told from a date-only date and steps locally too."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from policy import Outcome

from .builders import case, decide, order


def _late_cancellation(zone: str, due: str, at: datetime) -> dict[str, Any]:
    data = case("cancellation", at, order=order(next_billing_at=due))
    data["account"] = {"invoices": [{"number": "INV-3", "amount": {"amount": 1000,
                                                                     "currency": "USD"},
                                     "due_at": "2025-02-01T00:00:00Z", "paid": True}]}
    return data | {"time_zone": zone}


@pytest.mark.parametrize("zone", ["UTC", "America/New_York", "America/Los_Angeles",
                                  "Australia/Sydney"])
def test_a_utc_anchored_period_end_steps_a_month_in_utc(zone: str) -> None:
    """Due 1 March 00:00 UTC (28 February in New York): the next period ends 1 April 00:00 UTC,
    not the 28th a month after New York's 28 February (three days early)."""
    at = datetime(2025, 2, 27, 12, 0, tzinfo=UTC)
    late = decide("theopenhost", _late_cancellation(zone, "2025-03-01T00:00:00Z", at), now=at)
    assert late.outcome is Outcome.CANCEL_NEXT_PERIOD
    assert late.effective_at == datetime(2025, 4, 1, tzinfo=UTC)


@pytest.mark.parametrize("zone", ["America/New_York", "Australia/Sydney"])
def test_a_date_only_due_date_still_steps_to_local_midnight(zone: str) -> None:
    """Due 1 March (local midnight): the next period ends at local midnight on 1 April."""
    at = datetime.combine(date(2025, 2, 27), time(12), tzinfo=ZoneInfo(zone))
    late = decide("theopenhost", _late_cancellation(zone, "2025-03-01", at), now=at)
    assert late.outcome is Outcome.CANCEL_NEXT_PERIOD
    assert late.effective_at == datetime.combine(date(2025, 4, 1), time(0),
                                                 tzinfo=ZoneInfo(zone)).astimezone(UTC)
