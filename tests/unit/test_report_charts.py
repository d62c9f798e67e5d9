"""The report chart's bins follow the period: days up to two months, weeks, then months."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from reports.charts import DAILY_UP_TO, WEEKLY_UP_TO, Bin, bin_for, build_chart, slots

START = date(2025, 11, 1)


@pytest.mark.parametrize(("days", "size"), [
    (1, Bin.DAY), (31, Bin.DAY), (DAILY_UP_TO, Bin.DAY), (DAILY_UP_TO + 1, Bin.WEEK),
    (WEEKLY_UP_TO, Bin.WEEK), (WEEKLY_UP_TO + 1, Bin.MONTH), (365, Bin.MONTH),
    (3 * 365, Bin.MONTH),
])
def test_the_bin_follows_the_length_of_the_period(days, size):
    """Up to 62 days a day, up to 182 days a week, beyond a month."""
    assert bin_for(START, START + timedelta(days=days - 1)) is size


def test_weeks_run_monday_to_sunday_and_are_cut_to_the_period():
    """A period starting on a Saturday opens with a two-day week; every other starts Monday."""
    weeks = slots(START, date(2026, 1, 9), Bin.WEEK)
    assert (weeks[0].first, weeks[0].last) == (date(2025, 11, 1), date(2025, 11, 2))
    assert all(w.first.weekday() == 0 for w in weeks[1:])
    assert all((w.last - w.first).days == 6 for w in weeks[1:-1])
    assert (weeks[-1].first, weeks[-1].last) == (date(2026, 1, 5), date(2026, 1, 9))
    assert weeks[1].name == "2025-11-03 to 2025-11-09" and weeks[1].label == "Nov 3"


def test_months_are_calendar_months_cut_to_the_period_across_a_year_end():
    """Mid-November to mid-February: four months, the first and last partial."""
    months = slots(date(2025, 11, 15), date(2026, 2, 10), Bin.MONTH)
    assert [(m.first, m.last) for m in months] == [
        (date(2025, 11, 15), date(2025, 11, 30)), (date(2025, 12, 1), date(2025, 12, 31)),
        (date(2026, 1, 1), date(2026, 1, 31)), (date(2026, 2, 1), date(2026, 2, 10))]
    assert [m.label for m in months] == ["Nov 2025", "Dec 2025", "Jan 2026", "Feb 2026"]


def test_every_day_of_the_period_is_in_exactly_one_bin():
    """Whatever the bin, the slots tile the period without gap or overlap."""
    last = date(2026, 10, 31)
    for size in Bin:
        found = slots(START, last, size)
        days = [s.first + timedelta(days=i) for s in found
                for i in range((s.last - s.first).days + 1)]
        assert days == [START + timedelta(days=i) for i in range((last - START).days + 1)]


def test_binned_bars_keep_the_totals_and_stay_wide():
    """Ninety days by week: the bars add up to the daily amounts and none is a sliver."""
    rows = [{"date": (START + timedelta(days=i)).isoformat(), "currency": "USD",
             "refunds": 100 + i, "credits": 0, "fees": 0} for i in range(90)]
    chart = build_chart(rows, "USD", start=START, end=START + timedelta(days=89))
    assert chart.size is Bin.WEEK and chart.bins == 14
    assert "totals in USD: refunds 130.05" in chart.desc
    bars = [b for b in chart.bars if b.key == "refunds"]
    assert len(bars) == 14 and min(b.width for b in bars) > 15
    assert len({round(t.at) for t in chart.x_labels}) == len(chart.x_labels)
