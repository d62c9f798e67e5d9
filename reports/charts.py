"""The report's bar charts as geometry: bins that follow the period's length, bars, axes.

A chart shows refunds, credits and fees kept per bin in one currency. The bin follows the
period, so that a bar stays wide enough to read at any length: a day up to ``DAILY_UP_TO``
days, a week (Monday to Sunday) up to ``WEEKLY_UP_TO`` days, a calendar month beyond; the
first and last week or month are cut to the period. The SVG itself is drawn by the template
``chart.svg.j2`` from a ``Chart``; nothing here writes markup.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

from policy.money import CurrencyError, Money, exponent

DASH: Final = "\u2014"

# (key in a daily row, legend label, colour). Okabe-Ito colours: distinct for colour-blind readers.
SERIES: Final[tuple[tuple[str, str, str], ...]] = (
    ("refunds", "Refunds", "#0072b2"),
    ("credits", "Credits", "#e69f00"),
    ("fees", "Fees", "#009e73"),
)

DAILY_UP_TO: Final = 62  # days: two months of daily bars, each still a few pixels wide
WEEKLY_UP_TO: Final = 182  # days: up to 26 weekly bars; a longer period is drawn by month

WIDTH: Final = 1080
HEIGHT: Final = 300
_MARGIN: Final = {"top": 44, "right": 16, "bottom": 46, "left": 72}
_MIN_LABEL_GAP: Final = 56  # px between bin labels, so they never overlap
_CHAR_WIDTH: Final = 6.5  # px, a generous average at the chart's 11 px font


class Bin(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"


def format_amount(amount: int | None, currency: str) -> str:
    """Minor units as major units with the currency's decimals and thousands separators."""
    if amount is None:
        return DASH
    try:
        decimals = exponent(currency)
        value = Money(amount, currency).to_decimal()
    except (CurrencyError, TypeError):
        return str(amount)  # an unreadable code: show what we were given rather than guess
    return f"{value:,.{decimals}f}"


def bin_for(first: date, last: date) -> Bin:
    """The bin for a period from ``first`` to ``last`` inclusive."""
    days = (last - first).days + 1
    if days <= DAILY_UP_TO:
        return Bin.DAY
    return Bin.WEEK if days <= WEEKLY_UP_TO else Bin.MONTH


@dataclass(frozen=True)
class Slot:
    """One bin of the chart: the days from ``first`` to ``last`` inclusive, within the period."""

    first: date
    last: date
    size: Bin

    @property
    def label(self) -> str:
        """The axis label: 'Oct 5' for a day or the week starting then, 'Oct 2026' for a month."""
        if self.size is Bin.MONTH:
            return self.first.strftime("%b %Y")
        return self.first.strftime("%b %d").replace(" 0", " ")

    @property
    def name(self) -> str:
        """The slot in a tooltip: the day, the days of the week, or the month."""
        if self.size is Bin.DAY:
            return self.first.isoformat()
        if self.size is Bin.MONTH:
            return self.first.strftime("%B %Y")
        return f"{self.first.isoformat()} to {self.last.isoformat()}"


def slots(first: date, last: date, size: Bin) -> list[Slot]:
    """The bins covering ``first`` to ``last`` inclusive, the first and last cut to the period."""
    found: list[Slot] = []
    start = first
    while start <= last:
        end = min(_bin_end(start, size), last)
        found.append(Slot(start, end, size))
        start = end + timedelta(days=1)
    return found


def _bin_end(day: date, size: Bin) -> date:
    if size is Bin.DAY:
        return day
    if size is Bin.WEEK:
        return day + timedelta(days=6 - day.weekday())
    following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
    return following - timedelta(days=1)


# --- the chart's geometry ----------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    key: str
    colour: str
    x: float
    y: float
    width: float
    height: float
    tip: str


@dataclass(frozen=True)
class Tick:
    """A y-axis grid line, or an x-axis bin label, at ``at`` px."""

    at: float
    label: str
    zero: bool = False


@dataclass(frozen=True)
class Chart:
    """Everything ``chart.svg.j2`` draws: plain numbers and strings."""

    currency: str
    size: Bin
    title: str
    desc: str
    width: int
    height: int
    left: float
    top: float
    plot_width: float
    plot_height: float
    legend: Sequence[tuple[float, str, str]]  # (x, label, colour)
    y_ticks: Sequence[Tick]
    x_labels: Sequence[Tick]
    bars: Sequence[Bar]
    span: str
    bins: int

    @property
    def empty(self) -> bool:
        return not self.bars


def has_activity(rows: Iterable[Mapping[str, Any]], currency: str) -> bool:
    """Whether any refund, credit or fee of ``currency`` is in the daily rows."""
    return any(int(row.get(key) or 0) > 0 for row in rows if str(row.get("currency")) == currency
               for key, _, _ in SERIES)


def build_chart(rows: Iterable[Mapping[str, Any]], currency: str, *, start: date | None = None,
                end: date | None = None, width: int = WIDTH, height: int = HEIGHT) -> Chart:
    """The chart of ``currency``'s refunds, credits and fees per bin, from the report's daily
    rows (other currencies are ignored); the period defaults to the first and last day with data.
    """
    daily = _daily_values(rows, currency)
    first, last = _bounds(daily, start, end)
    size = bin_for(first, last) if first and last else Bin.DAY
    bins = slots(first, last, size) if first and last else []
    values = _binned(daily, bins)
    left, top = float(_MARGIN["left"]), float(_MARGIN["top"])
    plot_w = width - left - _MARGIN["right"]
    plot_h = height - top - _MARGIN["bottom"]
    peak = max((max(v) for v in values), default=0)
    chart = Chart(
        currency=currency, size=size, title=f"{currency}: refunds, credits and fees per {size}",
        desc=_desc(values, bins, currency), width=width, height=height, left=left, top=top,
        plot_width=plot_w, plot_height=plot_h, legend=_legend(width), y_ticks=(), x_labels=(),
        bars=(), span=f"{bins[0].first} to {bins[-1].last}" if bins else "", bins=len(bins))
    if not bins or peak <= 0:
        return chart
    scale_max, ticks = nice_ticks(_major(peak, currency), _major(1, currency))
    return _with_plot(chart, values, bins, scale_max, ticks)


def _with_plot(chart: Chart, values: Sequence[Sequence[int]], bins: Sequence[Slot],
               scale_max: float, ticks: Sequence[float]) -> Chart:
    base = chart.top + chart.plot_height
    y_ticks = [Tick(base - t / scale_max * chart.plot_height, _tick_label(t, chart.currency),
                    zero=t == 0) for t in ticks]
    return replace(chart, y_ticks=y_ticks, x_labels=_x_labels(chart, bins),
                   bars=_bars(chart, values, bins, scale_max))


def _daily_values(rows: Iterable[Mapping[str, Any]], currency: str) -> dict[date, list[int]]:
    values: dict[date, list[int]] = {}
    for row in rows:
        if str(row.get("currency")) != currency:
            continue
        day = date.fromisoformat(str(row["date"]))
        slot = values.setdefault(day, [0] * len(SERIES))
        for i, (key, _, _) in enumerate(SERIES):
            slot[i] += int(row.get(key) or 0)
    return values


def _bounds(values: Mapping[date, Any], start: date | None, end: date | None
            ) -> tuple[date | None, date | None]:
    known = sorted(values)
    first = min([d for d in (start, known[0] if known else None) if d is not None], default=None)
    last = max([d for d in (end, known[-1] if known else None) if d is not None], default=None)
    return first, last


def _binned(daily: Mapping[date, Sequence[int]], bins: Sequence[Slot]) -> list[list[int]]:
    """The series' sums per bin, in the order of ``bins``."""
    index = {}
    for i, slot in enumerate(bins):
        day = slot.first
        while day <= slot.last:
            index[day] = i
            day += timedelta(days=1)
    sums = [[0] * len(SERIES) for _ in bins]
    for day, amounts in daily.items():
        for j, amount in enumerate(amounts):
            sums[index[day]][j] += amount
    return sums


def _desc(values: Sequence[Sequence[int]], bins: Sequence[Slot], currency: str) -> str:
    if not bins:
        return "No days in the period."
    totals = [sum(v[i] for v in values) for i in range(len(SERIES))]
    listed = ", ".join(f"{label.lower()} {format_amount(total, currency)}"
                       for (_, label, _), total in zip(SERIES, totals, strict=True))
    unit = f"{bins[0].size}{'s' if len(bins) != 1 else ''}"
    return (f"{len(bins)} {unit} from {bins[0].first.isoformat()} to {bins[-1].last.isoformat()}"
            f"; totals in {currency}: {listed}.")


def _major(amount: int, currency: str) -> float:
    try:
        return float(Decimal(amount).scaleb(-exponent(currency)))
    except CurrencyError:
        return float(amount)


def nice_ticks(peak: float, unit: float, count: int = 5) -> tuple[float, list[float]]:
    """A round axis maximum at or above ``peak`` and ticks up to it, 1, 2 or 5 x 10^n apart.

    No step is finer than ``unit``, the currency's minor unit (no half-yen ticks).
    """
    raw = max(peak / count, unit)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    top = step * math.ceil(peak / step)
    return top, [step * i for i in range(round(top / step) + 1)]


def _tick_label(value: float, currency: str) -> str:
    if value == int(value):
        return f"{value:,.0f}"
    try:
        decimals = exponent(currency)
    except CurrencyError:
        decimals = 2
    return f"{value:,.{decimals}f}"


def _legend(width: int) -> list[tuple[float, str, str]]:
    x = float(width - _MARGIN["right"] - 80 * len(SERIES))
    return [(x + 80 * i, label, colour) for i, (_, label, colour) in enumerate(SERIES)]


def _bars(chart: Chart, values: Sequence[Sequence[int]], bins: Sequence[Slot],
          scale_max: float) -> list[Bar]:
    slot_w = chart.plot_width / len(bins)
    group = min(slot_w * 0.8, 90.0)
    bar_w = group / len(SERIES)
    base = chart.top + chart.plot_height
    bars = []
    for i, (slot, amounts) in enumerate(zip(bins, values, strict=True)):
        x0 = chart.left + i * slot_w + (slot_w - group) / 2
        for j, amount in enumerate(amounts):
            if amount <= 0:
                continue
            h = max(_major(amount, chart.currency) / scale_max * chart.plot_height, 1.0)
            key, label, colour = SERIES[j]
            tip = (f"{slot.name} {label.lower()}: "
                   f"{format_amount(amount, chart.currency)} {chart.currency}")
            bars.append(Bar(key, colour, x0 + j * bar_w, base - h, max(bar_w - 0.5, 0.5), h, tip))
    return bars


def _x_labels(chart: Chart, bins: Sequence[Slot]) -> list[Tick]:
    """A label under every bin, or every n-th when they would crowd each other."""
    slot_w = chart.plot_width / len(bins)
    widest = max(len(slot.label) for slot in bins) * _CHAR_WIDTH + 12
    every = max(1, math.ceil(max(_MIN_LABEL_GAP, widest) / slot_w))
    return [Tick(chart.left + (i + 0.5) * slot_w, slot.label)
            for i, slot in enumerate(bins) if i % every == 0]
