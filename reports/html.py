"""The reconciliation report as one self-contained HTML page: figures, daily charts, discrepancies.

No JavaScript, no external assets: the CSS is inline and each chart is server-rendered SVG, so
the page can be mailed, archived or opened from disk. ``render_html`` yields the page in chunks
and reads the discrepancies once, so a long table streams instead of being built in memory.
Every string from the report is escaped; amounts are minor units shown in major units with the
currency's ISO decimals.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from html import escape
from typing import Any, Final
from urllib.parse import quote

from policy.money import CurrencyError, Money, exponent
from reports.records import Discrepancy

# (key in report["currencies"][code], label, is money). Counts are shown as plain integers.
SUMMARY_ROWS: Final[tuple[tuple[str, str, bool], ...]] = (
    ("gross_charges", "Gross charges", True),
    ("refunds", "Refunds", True),
    ("credit_granted", "Credit granted", True),
    ("credit_used", "Credit used", True),
    ("fees_retained", "Fees retained", True),
    ("deductions_retained", "Deductions retained", True),
    ("late_fees", "Late fees", True),
    ("service_credits", "Service credits", True),
    ("overpayments_refunded", "Overpayments refunded", True),
    ("overpayments_credited", "Overpayments credited", True),
    ("provider_fees", "Provider fees", True),
    ("matched", "Matched records", False),
    ("discrepancies", "Discrepancies", False),
)

# (key in a daily row, legend label, colour). Okabe-Ito colours: distinct for colour-blind readers.
SERIES: Final[tuple[tuple[str, str, str], ...]] = (
    ("refunds", "Refunds", "#0072b2"),
    ("credits", "Credits", "#e69f00"),
    ("fees", "Fees", "#009e73"),
)

TABLE_COLUMNS: Final[tuple[str, ...]] = (
    "Kind", "Provider", "Provider id", "Currency", "Ledger amount", "Provider amount",
    "Detail", "When", "Event",
)

_ROWS_PER_CHUNK: Final = 50
_NUM_CLASS: Final = ' class="num"'
_DASH: Final = "\u2014"

_CSS: Final = """
:root{color-scheme:light;--ink:#1d2330;--muted:#5b6475;--line:#d9dee7;--bg:#f5f7fa}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px 48px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",
Roboto,"DejaVu Sans",sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:1200px;margin:0 auto}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:32px 0 12px}
h3{font-size:15px;margin:0 0 8px}
.meta{color:var(--muted);margin:0}
.panel{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px;
margin-bottom:16px}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{background:#eef1f6;font-weight:600}
tbody tr:nth-child(even){background:#fafbfc}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
td.num{white-space:nowrap}
.summary th[scope=row]{font-weight:500}
.summary{width:auto;min-width:60%}
.summary td.num{min-width:10em}
.breakdown{display:flex;flex-wrap:wrap;gap:16px;margin-top:12px}
.breakdown table{width:auto;min-width:260px}
.charts{display:grid;grid-template-columns:1fr;gap:16px}
.charts svg{width:100%;height:auto;display:block}
.discrepancies td{font-size:13px}
.discrepancies td.id{font-family:ui-monospace,"DejaVu Sans Mono",monospace;word-break:break-all;
min-width:11em;max-width:14em}
.discrepancies td.detail{min-width:17em;overflow-wrap:anywhere}
.kind{display:inline-block;padding:1px 8px;border-radius:10px;background:#fdecea;color:#8a1c12;
white-space:nowrap;font-size:12px}
td.when{min-width:6.5em}
.empty{color:var(--muted);font-style:italic}
footer{margin-top:32px;color:var(--muted);font-size:12px}
"""


def render_html(report: Mapping[str, Any]) -> Iterator[str]:
    """Yield the report page in chunks; the discrepancies are iterated once, as they come."""
    link = event_link_template(report)
    currencies = report.get("currencies") or {}
    yield _head(report)
    yield _summary_section(currencies)
    yield _charts_section(report, currencies)
    yield from _discrepancy_section(report.get("discrepancies") or (), link)
    yield _foot(report)


def render_html_string(report: Mapping[str, Any]) -> str:
    """The whole page as one string (for small reports and tests)."""
    return "".join(render_html(report))


# --- formatting --------------------------------------------------------------------------------


def format_amount(amount: int | None, currency: str) -> str:
    """Minor units as major units with the currency's decimals and thousands separators."""
    if amount is None:
        return _DASH
    try:
        decimals = exponent(currency)
        value = Money(amount, currency).to_decimal()
    except (CurrencyError, TypeError):
        return str(amount)  # an unreadable code: show what we were given rather than guess
    return f"{value:,.{decimals}f}"


def event_link_template(report: Mapping[str, Any]) -> str | None:
    """The report's ``event_link`` format string, checked before the first byte is sent."""
    template = report.get("event_link")
    if not template:
        return None
    if not isinstance(template, str):
        raise TypeError(f"event_link must be a format string, got {template!r}")
    try:
        template.format(event_id="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"event_link must use only {{event_id}}: {template!r}") from exc
    return template


def event_href(template: str | None, event_id: str | None) -> str | None:
    """The link to the event behind a row, with the id URL-quoted; None without both parts."""
    if not template or not event_id:
        return None
    return template.format(event_id=quote(event_id, safe=""))


def _when(value: datetime | None) -> str:
    if value is None:
        return _DASH
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    iso = value.isoformat()
    label = value.strftime("%Y-%m-%d %H:%M") + (" UTC" if value.tzinfo else "")
    return f'<time datetime="{escape(iso)}">{escape(label)}</time>'


def _period_label(start: str, end: str) -> str:
    """'2026-10-01 to 2026-10-31' for a period whose ``to`` is exclusive."""
    try:
        last = date.fromisoformat(end) - timedelta(days=1)
    except (TypeError, ValueError):
        return f"{start} to {end} (exclusive)"
    return f"{start} to {last.isoformat()}"


# --- page sections -----------------------------------------------------------------------------


def _head(report: Mapping[str, Any]) -> str:
    merchant = str(report.get("merchant", ""))
    period = _period_label(str(report.get("from", "")), str(report.get("to", "")))
    title = f"Reconciliation: {merchant}, {period}"
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        f'<header>\n<h1>Reconciliation report: {escape(merchant)}</h1>\n'
        f'<p class="meta">Period {escape(period)} (inclusive) &middot; generated '
        f'{escape(str(report.get("generated_at", _DASH)))}</p>\n</header>\n'
    )


def _summary_section(currencies: Mapping[str, Mapping[str, Any]]) -> str:
    if not currencies:
        return ('<section id="summary"><h2>Summary</h2>'
                '<p class="panel empty">No money moved in this period.</p></section>\n')
    codes = list(currencies)
    head = "".join(f'<th scope="col" class="num">{escape(c)}</th>' for c in codes)
    body = "".join(_summary_row(key, label, is_money, currencies)
                   for key, label, is_money in SUMMARY_ROWS)
    return (
        '<section id="summary"><h2>Summary</h2>\n<div class="panel scroll">'
        f'<table class="summary"><thead><tr><th scope="col">Figure</th>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table>\n{_breakdowns(currencies)}</div></section>\n"
    )


def _summary_row(key: str, label: str, is_money: bool,
                 currencies: Mapping[str, Mapping[str, Any]]) -> str:
    cells = []
    for code, figures in currencies.items():
        value = figures.get(key)
        if value is None:
            text = _DASH
        else:
            text = format_amount(value, code) if is_money else f"{int(value):,}"
        cells.append(f'<td class="num" data-key="{escape(key)}">{escape(text)}</td>')
    return f'<tr><th scope="row">{escape(label)}</th>{"".join(cells)}</tr>'


def _breakdowns(currencies: Mapping[str, Mapping[str, Any]]) -> str:
    tables = []
    for code, figures in currencies.items():
        for key, title in (("refunds_by_outcome", "outcome"), ("refunds_by_clause", "clause")):
            parts = figures.get(key) or {}
            if parts:
                tables.append(_breakdown_table(f"{code} refunds by {title}", parts, code))
    if not tables:
        return ""
    return f'<div class="breakdown">{"".join(tables)}</div>'


def _breakdown_table(caption: str, parts: Mapping[str, int], currency: str) -> str:
    rows = "".join(
        f'<tr><td>{escape(str(name))}</td><td class="num">'
        f"{escape(format_amount(amount, currency))}</td></tr>"
        for name, amount in parts.items()
    )
    return f"<table><caption><h3>{escape(caption)}</h3></caption><tbody>{rows}</tbody></table>"


def _charts_section(report: Mapping[str, Any], currencies: Mapping[str, Any]) -> str:
    daily = list(report.get("daily") or ())
    codes = list(currencies) + sorted({str(r.get("currency")) for r in daily} - set(currencies))
    start, end = _period_days(report)
    charts = "".join(
        f'<figure class="panel" style="margin:0">{svg_chart(daily, code, start=start, end=end)}'
        "</figure>"
        for code in codes
    )
    if not charts:
        charts = '<p class="panel empty">No daily movements in this period.</p>'
    return f'<section id="daily"><h2>Refunds, credits and fees per day</h2>' \
           f'<div class="charts">{charts}</div></section>\n'


def _period_days(report: Mapping[str, Any]) -> tuple[date | None, date | None]:
    """The first and last day of the period (``to`` is exclusive), or None where unreadable."""
    try:
        start = date.fromisoformat(str(report.get("from")))
        end = date.fromisoformat(str(report.get("to"))) - timedelta(days=1)
    except ValueError:
        return None, None
    return (start, end) if start <= end else (None, None)


def _discrepancy_section(discrepancies: Iterable[Discrepancy],
                         link: str | None) -> Iterator[str]:
    head = "".join(
        f'<th scope="col"{_NUM_CLASS if "amount" in c else ""}>{escape(c)}</th>'
        for c in TABLE_COLUMNS
    )
    yield ('<section id="discrepancies"><h2>Discrepancies</h2>\n<div class="panel scroll">'
           f'<table class="discrepancies"><thead><tr>{head}</tr></thead><tbody>\n')
    count = 0
    chunk: list[str] = []
    for item in discrepancies:
        chunk.append(discrepancy_row(item, link))
        count += 1
        if len(chunk) >= _ROWS_PER_CHUNK:
            yield "".join(chunk)
            chunk = []
    if count == 0:
        chunk.append(f'<tr><td colspan="{len(TABLE_COLUMNS)}" class="empty">'
                     "No discrepancies: every record matched.</td></tr>\n")
    chunk.append("</tbody></table></div></section>\n")
    yield "".join(chunk)


def discrepancy_row(item: Discrepancy, link: str | None) -> str:
    """One ``<tr>`` of the discrepancy table."""
    kind = str(item.kind)
    href = event_href(link, item.event_id)
    event = _DASH
    if href is not None:
        event = f'<a href="{escape(href)}">{escape(str(item.event_id))}</a>'
    elif item.event_id:
        event = escape(item.event_id)
    cells = (
        f'<td><span class="kind" title="{escape(kind)}">'
        f'{escape(kind.replace("_", " "))}</span></td>',
        f"<td>{escape(item.provider)}</td>",
        f'<td class="id">{escape(item.provider_id)}</td>',
        f"<td>{escape(item.currency)}</td>",
        f'<td class="num">{escape(format_amount(item.ledger_amount, item.currency))}</td>',
        f'<td class="num">{escape(format_amount(item.provider_amount, item.currency))}</td>',
        f'<td class="detail">{escape(item.detail)}</td>',
        f'<td class="when">{_when(item.occurred_at)}</td>',
        f"<td>{event}</td>",
    )
    return f'<tr data-kind="{escape(kind)}">{"".join(cells)}</tr>\n'


def _foot(report: Mapping[str, Any]) -> str:
    return (
        "<footer>Amounts in major units of each currency. Period dates are UTC; the report's "
        f'end date {escape(str(report.get("to", "")))} is exclusive.</footer>\n'
        "</main>\n</body>\n</html>\n"
    )


# --- the chart ---------------------------------------------------------------------------------

_MARGIN: Final = {"top": 44, "right": 16, "bottom": 46, "left": 72}
_MIN_LABEL_GAP: Final = 56  # px between date labels, so they never overlap


def svg_chart(rows: Iterable[Mapping[str, Any]], currency: str, width: int = 1080,
              height: int = 300, *, start: date | None = None, end: date | None = None) -> str:
    """A grouped bar chart of refunds, credits and fees per day, as a standalone SVG element.

    ``rows`` are the report's daily rows (other currencies are ignored); every day from
    ``start`` to ``end`` inclusive gets a slot, defaulting to the first and last day with data.
    """
    values = _daily_values(rows, currency)
    days = _day_range(values, start, end)
    title = f"{currency}: refunds, credits and fees per day"
    desc = _chart_desc(values, currency, days)
    parts = [_svg_open(title, desc, width, height), _heading(currency), _legend(width)]
    peak = max((max(v) for v in values.values()), default=0)
    if not days or peak <= 0:
        parts.append(_empty_plot(width, height))
    else:
        scale_max, ticks = _nice_ticks(_major(peak, currency), _major(1, currency))
        parts.append(_y_axis(ticks, scale_max, currency, width, height))
        parts.append(_bars(values, days, scale_max, currency, width, height))
        parts.append(_x_axis(days, width, height))
    parts.append("</svg>")
    return "".join(parts)


def _svg_open(title: str, desc: str, width: int, height: int) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}" '
        'font-family="system-ui, DejaVu Sans, sans-serif" font-size="11">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>"
    )


def _heading(currency: str) -> str:
    return (f'<text x="{_MARGIN["left"]}" y="18" font-size="14" font-weight="600" '
            f'fill="#1d2330">{escape(currency)}</text>')


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


def _day_range(values: Mapping[date, Any], start: date | None, end: date | None) -> list[date]:
    known = sorted(values)
    first = min([d for d in (start, known[0] if known else None) if d is not None], default=None)
    last = max([d for d in (end, known[-1] if known else None) if d is not None], default=None)
    if first is None or last is None:
        return []
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _chart_desc(values: Mapping[date, Sequence[int]], currency: str, days: Sequence[date]) -> str:
    if not days:
        return "No days in the period."
    totals = [sum(v[i] for v in values.values()) for i in range(len(SERIES))]
    listed = ", ".join(f"{label.lower()} {format_amount(total, currency)}"
                       for (_, label, _), total in zip(SERIES, totals, strict=True))
    return (f"{len(days)} days from {days[0].isoformat()} to {days[-1].isoformat()}; "
            f"totals in {currency}: {listed}.")


def _major(amount: int, currency: str) -> float:
    try:
        return float(Decimal(amount).scaleb(-exponent(currency)))
    except CurrencyError:
        return float(amount)


def _nice_ticks(peak: float, unit: float, count: int = 5) -> tuple[float, list[float]]:
    """A round axis maximum at or above ``peak`` and ticks up to it, 1, 2 or 5 x 10^n apart.

    No step is finer than ``unit``, the currency's minor unit (no half-yen ticks).
    """
    raw = max(peak / count, unit)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw * (1 - 1e-9))
    top = step * math.ceil(peak / step)
    return top, [step * i for i in range(round(top / step) + 1)]


def _plot_box(width: int, height: int) -> tuple[float, float, float, float]:
    """Left, top, plot width and plot height."""
    left, top = _MARGIN["left"], _MARGIN["top"]
    return left, top, width - left - _MARGIN["right"], height - top - _MARGIN["bottom"]


def _legend(width: int) -> str:
    items, x = [], float(width - _MARGIN["right"] - 80 * len(SERIES))
    for _, label, colour in SERIES:
        items.append(f'<rect x="{x:.1f}" y="9" width="12" height="12" rx="2" fill="{colour}"/>'
                     f'<text x="{x + 17:.1f}" y="19" fill="#1d2330">{escape(label)}</text>')
        x += 80
    return f'<g class="legend">{"".join(items)}</g>'


def _tick_label(value: float, currency: str) -> str:
    if value == int(value):
        return f"{value:,.0f}"
    try:
        decimals = exponent(currency)
    except CurrencyError:
        decimals = 2
    return f"{value:,.{decimals}f}"


def _y_axis(ticks: Sequence[float], scale_max: float, currency: str, width: int,
            height: int) -> str:
    left, top, plot_w, plot_h = _plot_box(width, height)
    lines = []
    for tick in ticks:
        y = top + plot_h - tick / scale_max * plot_h
        lines.append(
            f'<line x1="{left:.1f}" x2="{left + plot_w:.1f}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{"#9aa3b2" if tick == 0 else "#e3e7ee"}" stroke-width="1"/>'
            f'<text x="{left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" fill="#5b6475">'
            f"{escape(_tick_label(tick, currency))}</text>"
        )
    mid = top + plot_h / 2
    lines.append(f'<text transform="translate(14 {mid:.1f}) rotate(-90)" text-anchor="middle" '
                 f'fill="#5b6475">{escape(currency)}</text>')
    return f'<g class="y-axis">{"".join(lines)}</g>'


def _bars(values: Mapping[date, Sequence[int]], days: Sequence[date], scale_max: float,
          currency: str, width: int, height: int) -> str:
    left, top, plot_w, plot_h = _plot_box(width, height)
    slot = plot_w / len(days)
    group = min(slot * 0.8, 90.0)
    bar = group / len(SERIES)
    rects = []
    for i, day in enumerate(days):
        x0 = left + i * slot + (slot - group) / 2
        for j, amount in enumerate(values.get(day, ())):
            if amount <= 0:
                continue
            h = max(_major(amount, currency) / scale_max * plot_h, 1.0)
            key, label, colour = SERIES[j]
            tip = f"{day.isoformat()} {label.lower()}: {format_amount(amount, currency)} {currency}"
            rects.append(
                f'<rect class="{key}" x="{x0 + j * bar:.2f}" y="{top + plot_h - h:.2f}" '
                f'width="{max(bar - 0.5, 0.5):.2f}" height="{h:.2f}" fill="{colour}">'
                f"<title>{escape(tip)}</title></rect>"
            )
    return f'<g class="bars">{"".join(rects)}</g>'


def _x_axis(days: Sequence[date], width: int, height: int) -> str:
    left, top, plot_w, plot_h = _plot_box(width, height)
    slot = plot_w / len(days)
    every = max(1, math.ceil(_MIN_LABEL_GAP / slot))
    base = top + plot_h
    labels = []
    for i, day in enumerate(days):
        if i % every:
            continue
        x = left + (i + 0.5) * slot
        labels.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base:.1f}" y2="{base + 4:.1f}" '
            f'stroke="#9aa3b2"/><text x="{x:.1f}" y="{base + 17:.1f}" text-anchor="middle" '
            f'fill="#5b6475">{escape(day.strftime("%b %d").replace(" 0", " "))}</text>'
        )
    span = f"{days[0].isoformat()} to {days[-1].isoformat()}"
    labels.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle" '
                  f'fill="#5b6475">{escape(span)}</text>')
    return f'<g class="x-axis">{"".join(labels)}</g>'


def _empty_plot(width: int, height: int) -> str:
    left, top, plot_w, plot_h = _plot_box(width, height)
    return (
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafbfc" '
        f'stroke="#e3e7ee"/><text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" '
        'text-anchor="middle" fill="#5b6475">No refunds, credits or fees in this period</text>'
    )
