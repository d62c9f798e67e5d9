"""Calendar arithmetic the rules share: day counts in UTC, month steps, window checks. Pure."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def calendar_days(start: datetime, end: datetime) -> int:
    """Whole calendar days (UTC dates) from ``start`` to ``end``: same day 0, next day 1."""
    return (end.astimezone(UTC).date() - start.astimezone(UTC).date()).days


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus ``months`` calendar months, the day clamped to the target month's length."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def start_of_month(moment: datetime, months_ahead: int) -> datetime:
    """Midnight UTC on the first day of the month ``months_ahead`` after ``moment``'s month."""
    first = moment.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return add_months(first, months_ahead)


def months_started(start: datetime, moment: datetime) -> int:
    """How many monthly periods, counted from ``start``, have begun by ``moment`` (at least 1)."""
    count = 1
    while add_months(start, count) <= moment:
        count += 1
    return count


def describe(delta: timedelta) -> str:
    """A compact, exact rendering of a duration: ``3d 00:00:00``, ``-0d 00:00:01``."""
    days, seconds = delta.days, delta.seconds
    sign = ""
    if days < 0:
        sign, total = "-", -(days * 86400 + seconds)
        days, seconds = divmod(total, 86400)
    return f"{sign}{days}d {seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
