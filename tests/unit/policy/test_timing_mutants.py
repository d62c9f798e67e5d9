"""Monthly periods begun by a moment, counted from a start: a period begins on its first instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from policy.timing import months_started

START = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(("moment", "count"), [
    (START, 1),
    (datetime(2025, 2, 28, 12, 0, tzinfo=UTC) - SECOND, 1),
    (datetime(2025, 2, 28, 12, 0, tzinfo=UTC), 2),  # the 31st clamped to February's last day
    (datetime(2025, 4, 30, 12, 0, tzinfo=UTC), 4),
    (datetime(2026, 1, 31, 12, 0, tzinfo=UTC), 13),
], ids=["at the start", "a second before month 2", "month 2 begins", "month 4 begins",
        "a year later"])
def test_months_started_counts_each_period_from_its_first_instant(moment, count):
    """The count is 1 at the start and goes up exactly when each later monthly period begins."""
    assert months_started(START, moment) == count
