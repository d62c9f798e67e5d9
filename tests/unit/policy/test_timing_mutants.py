"""Calendar arithmetic: monthly periods begun by a moment (a period begins on its first
instant), months added with the day clamped, a month's start on the merchant's calendar, and
answers in UTC."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from policy.timing import (
    UTC_ZONE,
    add_days,
    add_months,
    calendar_days,
    describe,
    local_midnight,
    months_started,
    start_of_month,
    zone,
)

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


@pytest.mark.parametrize(("moment", "months", "expected"), [
    (datetime(2024, 1, 31, 9, tzinfo=UTC), 1, datetime(2024, 2, 29, 9, tzinfo=UTC)),
    (datetime(2025, 1, 31, 9, tzinfo=UTC), 1, datetime(2025, 2, 28, 9, tzinfo=UTC)),
    (datetime(2025, 1, 29, 9, tzinfo=UTC), 1, datetime(2025, 2, 28, 9, tzinfo=UTC)),
    (datetime(2025, 1, 31, 9, tzinfo=UTC), 2, datetime(2025, 3, 31, 9, tzinfo=UTC)),
    (datetime(2025, 1, 31, 9, tzinfo=UTC), 3, datetime(2025, 4, 30, 9, tzinfo=UTC)),
    (datetime(2025, 12, 15, 9, tzinfo=UTC), 1, datetime(2026, 1, 15, 9, tzinfo=UTC)),
    (datetime(2025, 1, 15, 9, tzinfo=UTC), -1, datetime(2024, 12, 15, 9, tzinfo=UTC)),
], ids=["leap February", "February", "the 29th in February", "a 31-day month",
        "a 30-day month", "into the next year", "back into the last year"])
def test_add_months_clamps_to_the_target_months_length(moment, months, expected):
    assert add_months(moment, months) == expected


SYDNEY = zone("Australia/Sydney")
NEW_YORK = zone("America/New_York")


@pytest.mark.parametrize(("moment", "ahead", "tz", "expected"), [
    # 23:30 UTC on 31 January is already 1 February in Sydney (UTC+11)
    (datetime(2025, 1, 31, 23, 30, tzinfo=UTC), 0, SYDNEY, datetime(2025, 1, 31, 13, tzinfo=UTC)),
    (datetime(2025, 12, 10, tzinfo=UTC), 1, UTC_ZONE, datetime(2026, 1, 1, tzinfo=UTC)),
    (datetime(2025, 11, 10, tzinfo=UTC), 14, UTC_ZONE, datetime(2027, 1, 1, tzinfo=UTC)),
    (datetime(2025, 12, 10, tzinfo=UTC), 12, NEW_YORK, datetime(2026, 12, 1, 5, tzinfo=UTC)),
], ids=["the merchant's month, not UTC's", "into the next year", "fourteen months ahead",
        "a year ahead in New York"])
def test_start_of_month_is_the_merchants_month(moment, ahead, tz, expected):
    start = start_of_month(moment, ahead, tz)
    assert start == expected
    assert start.tzinfo is UTC  # the rules compare and count in UTC (calendar_days' fast path)


def test_day_arithmetic_answers_in_utc():
    """add_days and local_midnight answer in UTC itself, not the machine's zone."""
    moment = datetime(2025, 3, 8, 12, tzinfo=UTC)
    assert add_days(moment, 1, NEW_YORK) == datetime(2025, 3, 9, 11, tzinfo=UTC)  # DST began
    assert add_days(moment, 1, NEW_YORK).tzinfo is UTC
    assert local_midnight(date(2025, 3, 9), NEW_YORK) == datetime(2025, 3, 9, 5, tzinfo=UTC)
    assert local_midnight(date(2025, 3, 9), NEW_YORK).tzinfo is UTC


def test_calendar_days_counts_utc_dates_whatever_offset_a_moment_carries():
    """Two moments an hour apart on 1 January UTC, written at +02:00 where the second is
    already 2 January: no UTC day has passed."""
    plus_two = timezone(timedelta(hours=2))
    start = datetime(2025, 1, 1, 23, 30, tzinfo=plus_two)  # 21:30 UTC
    end = datetime(2025, 1, 2, 0, 30, tzinfo=plus_two)  # 22:30 UTC
    assert calendar_days(start, end) == 0
    assert calendar_days(start, end, SYDNEY) == 0  # 08:30 and 09:30 on 2 January there
    assert calendar_days(start, end + timedelta(hours=2)) == 1


def test_calendar_days_does_not_depend_on_the_machines_zone(monkeypatch):
    """UTC dates, also on a machine whose local zone is not UTC."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        start = datetime(2025, 1, 1, 9, tzinfo=timezone(timedelta(hours=-5)))  # 14:00 UTC
        # 16:00 UTC: the same UTC date, though 23:00 and 01:00 on two dates in Tokyo
        assert calendar_days(start, start + timedelta(hours=2)) == 0
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize(("delta", "text"), [
    (timedelta(days=3), "3d 00:00:00"),
    (timedelta(hours=5, minutes=6, seconds=7), "0d 05:06:07"),
    (timedelta(hours=1), "0d 01:00:00"),
    (timedelta(hours=23, minutes=59, seconds=59), "0d 23:59:59"),
    (-timedelta(seconds=1), "-0d 00:00:01"),
    (-timedelta(days=1, hours=2, minutes=3, seconds=4), "-1d 02:03:04"),
    (-timedelta(days=2), "-2d 00:00:00"),
])
def test_describe_writes_a_duration_exactly(delta, text):
    assert describe(delta) == text
