"""The reconciliation report as one self-contained HTML page: figures, charts, discrepancies.

No JavaScript, no external assets: the CSS is inline and each chart is server-rendered SVG, so
the page can be mailed, archived or opened from disk. The page is the Jinja2 template
``templates/report.html.j2``, autoescaped, so every string from the report reaches the page as
text; this module only turns the report into plain values for it. ``render_html`` yields the page
in chunks and reads the discrepancies once, so a long table streams instead of being built in
memory. Amounts are minor units shown in major units with the currency's ISO decimals.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Final
from urllib.parse import quote, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined

from reports.charts import DASH, Bin, Chart, bin_for, build_chart, format_amount, has_activity
from reports.records import Discrepancy

__all__ = ["event_href", "event_link_template", "format_amount", "render_html",
           "render_html_string", "svg_chart"]

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

TABLE_COLUMNS: Final[tuple[str, ...]] = (
    "Kind", "Provider", "Provider id", "Currency", "Ledger amount", "Provider amount",
    "Detail", "When", "Event",
)

_CHUNK_CHARS: Final = 16 * 1024  # what a chunk of the page holds before it is sent


@cache
def environment() -> Environment:
    """The templates' environment: autoescaped, and an undefined name is an error."""
    return Environment(loader=PackageLoader("reports", "templates"), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       auto_reload=False)


def render_html(report: Mapping[str, Any], toolbar: Sequence[tuple[str, str]] = (),
                account_link: str | None = None) -> Iterator[str]:
    """Yield the report page in chunks; the discrepancies are iterated once, as they come.

    ``toolbar``: (label, address) links shown above the report (the console's way back and its
    downloads); ``account_link``: a format string with ``{provider_id}`` that links each
    discrepancy's provider id to the account behind it. The event link is checked before the
    first chunk, so a bad one fails before a byte is sent.
    """
    link = event_link_template(report)
    context = {**page_context(report, link, account_link), "toolbar": list(toolbar)}
    pending: list[str] = []
    size = 0
    for piece in environment().get_template("report.html.j2").generate(context):
        pending.append(piece)
        size += len(piece)
        if size >= _CHUNK_CHARS:
            yield "".join(pending)
            pending, size = [], 0
    if pending:
        yield "".join(pending)


def render_html_string(report: Mapping[str, Any]) -> str:
    """The whole page as one string (for small reports and tests)."""
    return "".join(render_html(report))


def svg_chart(rows: Iterable[Mapping[str, Any]], currency: str, *, start: date | None = None,
              end: date | None = None) -> str:
    """One currency's chart as a standalone SVG element."""
    chart = build_chart(rows, currency, start=start, end=end)
    module = environment().get_template("chart.svg.j2").module
    return str(module.chart(chart))  # type: ignore[attr-defined]


def page_context(report: Mapping[str, Any], link: str | None,
                 account_link: str | None = None) -> dict[str, Any]:
    """The template's values; the discrepancies stay an iterator, turned into rows lazily."""
    currencies: Mapping[str, Mapping[str, Any]] = report.get("currencies") or {}
    return {
        "merchant": str(report.get("merchant", "")),
        "period": _period_label(str(report.get("from", "")), str(report.get("to", ""))),
        "generated_at": str(report.get("generated_at", DASH)),
        "end": str(report.get("to", "")),
        "summary": summary(currencies),
        "charts": charts(report, currencies),
        "columns": TABLE_COLUMNS,
        "rows": (table_row(d, link, account_link) for d in report.get("discrepancies") or ()),
        "toolbar": [],
        "links": link is not None,
        "dash": DASH,
    }


# --- links -------------------------------------------------------------------------------------


def event_link_template(report: Mapping[str, Any]) -> str | None:
    """The report's ``event_link`` format string, checked before the first byte is sent: only
    ``{event_id}`` in it, and an http(s) address or a path, never another scheme."""
    template = report.get("event_link")
    if not template:
        return None
    if not isinstance(template, str):
        raise TypeError(f"event_link must be a format string, got {template!r}")
    try:
        template.format(event_id="x")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"event_link must use only {{event_id}}: {template!r}") from exc
    if urlsplit(template).scheme not in ("", "http", "https"):
        raise ValueError(f"event_link must be an http(s) address: {template!r}")
    return template


def event_href(template: str | None, event_id: str | None) -> str | None:
    """The link to the event behind a row, with the id URL-quoted; None without both parts."""
    if not template or not event_id:
        return None
    return template.format(event_id=quote(event_id, safe=""))


# --- the summary -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryRow:
    key: str
    label: str
    cells: Sequence[str]


@dataclass(frozen=True)
class Summary:
    codes: Sequence[str]  # the currencies with activity, one column each
    rows: Sequence[SummaryRow]
    breakdowns: Sequence[tuple[str, Sequence[tuple[str, str]]]]
    quiet: Sequence[str]  # the currencies without: one line each


def summary(currencies: Mapping[str, Mapping[str, Any]]) -> Summary:
    codes = [c for c, figures in currencies.items() if _active(figures)]
    rows = [SummaryRow(key, label, [_figure(currencies[c].get(key), c, is_money) for c in codes])
            for key, label, is_money in SUMMARY_ROWS]
    return Summary(codes, rows, _breakdowns(currencies, codes),
                   [c for c in currencies if c not in codes])


def _active(figures: Mapping[str, Any]) -> bool:
    """Whether a currency's figures hold anything but zeros (counts included)."""
    return any(any(value.values()) if isinstance(value, Mapping) else value
               for value in figures.values())


def _figure(value: Any, currency: str, is_money: bool) -> str:
    if value is None:
        return DASH
    return format_amount(value, currency) if is_money else f"{int(value):,}"


def _breakdowns(currencies: Mapping[str, Mapping[str, Any]], codes: Sequence[str]
                ) -> list[tuple[str, list[tuple[str, str]]]]:
    tables = []
    for code in codes:
        for key, title in (("refunds_by_outcome", "outcome"), ("refunds_by_clause", "clause")):
            parts = currencies[code].get(key) or {}
            if parts:
                tables.append((f"{code} refunds by {title}",
                               [(str(name), format_amount(amount, code))
                                for name, amount in parts.items()]))
    return tables


# --- the charts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Charts:
    size: Bin  # the period's bin, for the heading
    charts: Sequence[Chart]
    quiet: Sequence[str]  # currencies without refunds, credits or fees: named in one line


def charts(report: Mapping[str, Any], currencies: Mapping[str, Any]) -> Charts:
    daily = list(report.get("daily") or ())
    codes = list(currencies) + sorted({str(r.get("currency")) for r in daily} - set(currencies))
    start, end = _period_days(report)
    drawn = [build_chart(daily, code, start=start, end=end)
             for code in codes if has_activity(daily, code)]
    size = drawn[0].size if drawn else (bin_for(start, end) if start and end else Bin.DAY)
    return Charts(size, drawn, [code for code in codes if not has_activity(daily, code)])


def _period_days(report: Mapping[str, Any]) -> tuple[date | None, date | None]:
    """The first and last day of the period (``to`` is exclusive), or None where unreadable."""
    try:
        start = date.fromisoformat(str(report.get("from")))
        end = date.fromisoformat(str(report.get("to"))) - timedelta(days=1)
    except ValueError:
        return None, None
    return (start, end) if start <= end else (None, None)


def _period_label(start: str, end: str) -> str:
    """'2026-10-01 to 2026-10-31' for a period whose ``to`` is exclusive."""
    try:
        last = date.fromisoformat(end) - timedelta(days=1)
    except (TypeError, ValueError):
        return f"{start} to {end} (exclusive)"
    return f"{start} to {last.isoformat()}"


# --- the discrepancy table ---------------------------------------------------------------------


@dataclass(frozen=True)
class When:
    iso: str
    day: str  # 2026-10-03
    time: str  # 09:15 UTC


@dataclass(frozen=True)
class TableRow:
    kind: str
    kind_label: str
    provider: str
    provider_id: str
    currency: str
    ledger_amount: str
    provider_amount: str
    detail: str
    when: When | None
    event_id: str | None
    href: str | None
    account_href: str | None = None


def table_row(item: Discrepancy, link: str | None, account_link: str | None = None
              ) -> TableRow:
    """One row of the discrepancy table, as text."""
    kind = str(item.kind)
    return TableRow(
        kind=kind, kind_label=kind.replace("_", " "), provider=item.provider,
        provider_id=item.provider_id, currency=item.currency,
        ledger_amount=format_amount(item.ledger_amount, item.currency),
        provider_amount=format_amount(item.provider_amount, item.currency),
        detail=item.detail, when=_when(item.occurred_at), event_id=item.event_id or None,
        href=event_href(link, item.event_id),
        account_href=account_link.format(provider_id=quote(item.provider_id, safe=""))
        if account_link and item.provider_id else None)


def _when(value: datetime | None) -> When | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return When(value.isoformat(), value.strftime("%Y-%m-%d"),
                value.strftime("%H:%M") + (" UTC" if value.tzinfo else ""))
