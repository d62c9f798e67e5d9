"""Calendar arithmetic the rules share: day counts and month starts on the merchant's calendar
(an IANA time zone, UTC by default), month steps, durations. Pure."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
# The times a fact may carry, wherever it enters (a Case, a provider event, an admin request):
# anything outside is no real event's, and periods and windows are added to these with headroom.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
EARLIEST_UNIX, LATEST_UNIX = int(EARLIEST.timestamp()), int(LATEST.timestamp())


def _utc(moment: datetime) -> datetime:
    # Case datetimes are UTC already (case_from_json normalises them); skip the conversion then.
    return moment if moment.tzinfo is UTC else moment.astimezone(UTC)


class UnknownZone(ValueError):
    """A time zone name that is not in the IANA database."""


@cache
def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Australia/Sydney``); ``UnknownZone`` if there is none."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # "../x" is a ValueError
        raise UnknownZone(f"{name!r} is not an IANA time zone (e.g. 'Europe/London')") from exc


UTC_ZONE = zone("UTC")


def local_date(moment: datetime, tz: ZoneInfo) -> date:
    """The date on the merchant's calendar at ``moment``."""
    return moment.astimezone(tz).date()


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The instant (UTC) the merchant's calendar day ``day`` begins."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


def add_days(moment: datetime, days: int, tz: ZoneInfo) -> datetime:
    """``days`` calendar days after ``moment`` (before, if negative) on the merchant's calendar,
    at the same local time of day: a 23- or 25-hour day (a daylight-saving change) is still one
    day. Returned in UTC."""
    local = moment.astimezone(tz)
    return datetime.combine(local.date() + timedelta(days=days), local.time(),
                            tzinfo=tz).astimezone(UTC)


def calendar_days(start: datetime, end: datetime, tz: ZoneInfo = UTC_ZONE) -> int:
    """Whole calendar days (dates in ``tz``) from ``start`` to ``end``: same day 0, next day 1."""
    if tz is UTC_ZONE:
        return _utc(end).toordinal() - _utc(start).toordinal()
    return local_date(end, tz).toordinal() - local_date(start, tz).toordinal()


def _month_length(year: int, month: int) -> int:
    if month == 2:
        return 29 if calendar.isleap(year) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus ``months`` calendar months, the day clamped to the target month's length."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    day = moment.day
    if day > 28:
        day = min(day, _month_length(year, month))
    return moment.replace(year=year, month=month, day=day)


def start_of_month(moment: datetime, months_ahead: int, tz: ZoneInfo = UTC_ZONE) -> datetime:
    """The instant (UTC) the month ``months_ahead`` after ``moment``'s month begins in ``tz``."""
    local = moment.astimezone(tz)
    index = local.month - 1 + months_ahead
    return local_midnight(date(local.year + index // 12, index % 12 + 1, 1), tz)


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
    # %-formatting on purpose: about twice as fast as an f-string with format specs, same text.
    return "%s%dd %02d:%02d:%02d" % (  # noqa: UP031
        sign, days, seconds // 3600, seconds // 60 % 60, seconds % 60)
