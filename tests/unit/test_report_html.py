"""The HTML report's pure parts: escaping, amounts, links, quiet currencies and the SVG chart."""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from reports.build import event_link
from reports.html import (
    event_href,
    format_amount,
    render_html,
    render_html_string,
    svg_chart,
)
from reports.records import Discrepancy, DiscrepancyKind

SVG = "{http://www.w3.org/2000/svg}"
ROOT = Path(__file__).resolve().parents[2]
EVIL = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


def _discrepancy(**overrides: Any) -> Discrepancy:
    fields: dict[str, Any] = {
        "kind": DiscrepancyKind.AMOUNT_MISMATCH, "provider": "stripe", "provider_id": "re_1",
        "currency": "USD", "ledger_amount": 2000, "provider_amount": 1800,
        "detail": "refund differs", "event_id": "evt_1",
        "occurred_at": datetime(2026, 10, 3, 9, 15, tzinfo=UTC),
    }
    fields.update(overrides)
    return Discrepancy(**fields)


def _report(**overrides: Any) -> dict[str, Any]:
    report: dict[str, Any] = {
        "merchant": "theopenhost", "from": "2026-10-01", "to": "2026-11-01",
        "generated_at": "2026-11-21T22:40:00Z",
        "currencies": {"USD": {"gross_charges": 123400, "refunds": 2300, "matched": 812,
                               "discrepancies": 1}},
        "daily": [{"date": "2026-10-01", "currency": "USD", "refunds": 1200, "credits": 0,
                   "fees": 35}],
        "discrepancies": [_discrepancy()],
        "event_link": "https://gateway.example.com/v1/events/{event_id}",
    }
    report.update(overrides)
    return report


class _Tags(HTMLParser):
    """Every element and every attribute name the page holds, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)


def _parsed(page: str) -> _Tags:
    parser = _Tags()
    parser.feed(page)
    parser.close()
    return parser


def test_markup_in_every_report_string_reaches_the_page_as_text():
    """A merchant, provider id, detail, event id, clause, outcome and currency code holding
    `<script>` and `"><img onerror=...>` render escaped: no script, no img, no onerror."""
    evil_row = _discrepancy(provider="pay" + EVIL, provider_id="ch_" + EVIL, detail=EVIL,
                            event_id="evt_" + EVIL, currency="US" + EVIL)
    page = render_html_string(_report(
        merchant="<b>shop</b>" + EVIL, generated_at=EVIL, discrepancies=[evil_row],
        currencies={"USD": {"refunds": 10, "refunds_by_clause": {EVIL: 10},
                            "refunds_by_outcome": {"<script>x</script>": 10}},
                    EVIL: {"refunds": 5}},
        daily=[{"date": "2026-10-02", "currency": EVIL, "refunds": 5}]))
    parsed = _parsed(page)
    assert not {"script", "img", "b"} & parsed.tags
    assert "onerror" not in parsed.attributes
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    assert 'href="https://gateway.example.com/v1/events/evt_%22%3E%3Cimg' in page


def test_the_templates_escape_by_themselves():
    """Autoescape is on for the page and the chart, and no hand escaping is left in the code."""
    from reports.html import environment

    assert environment().autoescape is True
    for module in ("reports/html.py", "reports/charts.py"):
        source = (ROOT / module).read_text()
        assert "escape(" not in source and "from html import" not in source, module


def test_the_templates_are_shipped_with_the_package():
    """Every file under reports/templates matches the package-data patterns in pyproject."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["*"]
    templates = list((ROOT / "reports" / "templates").iterdir())
    assert templates
    for path in templates:
        assert any(fnmatch(path.name, p) for p in patterns), path.name


def test_a_zero_decimal_currency_is_shown_without_decimals():
    """JPY amounts are whole yen; USD and a three-decimal currency keep their decimals."""
    assert format_amount(123456, "JPY") == "123,456"
    assert format_amount(123456, "USD") == "1,234.56"
    assert format_amount(1234, "KWD") == "1.234"
    assert format_amount(None, "USD") == "\u2014"
    page = render_html_string(_report(currencies={"JPY": {"gross_charges": 5000}}))
    assert ">5,000<" in page and "5,000.00" not in page and "50.00" not in page


def test_an_empty_period_renders_a_complete_page_with_its_empty_states():
    """No currencies, days or discrepancies: the page still closes and says so."""
    page = render_html_string(_report(currencies={}, daily=[], discrepancies=iter(())))
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "No money moved in this period." in page
    assert "No movements in this period." in page
    assert "No discrepancies" in page


def test_a_currency_without_activity_is_one_line_not_a_column_or_a_chart():
    """EUR with only zeros and no daily rows: 'EUR: no activity', no EUR column, no EUR chart;
    GBP with charges but no refunds, credits or fees: a column; both named in one line where
    the charts are."""
    zeros = {"gross_charges": 0, "refunds": 0, "refunds_by_clause": {}, "matched": 0,
             "discrepancies": 0}
    page = render_html_string(_report(currencies={
        "USD": {"gross_charges": 123400, "refunds": 2300, "matched": 812},
        "EUR": zeros, "GBP": {**zeros, "gross_charges": 5000}}))
    assert '<p class="quiet" data-quiet="EUR">EUR: no activity</p>' in page
    assert '<th scope="col" class="num">EUR</th>' not in page
    assert '<th scope="col" class="num">GBP</th>' in page
    assert ('<p class="quiet" data-quiet-charts="EUR GBP">No refunds, credits or fees in EUR, '
            'GBP.</p>') in page
    assert page.count("<svg") == 1 and 'data-currency="USD"' in page
    assert "No refunds, credits or fees in this period" not in page  # no empty panel


def test_event_links_are_absolute_under_the_base_url_and_quote_the_id():
    """The link is the base address's event path filled with the URL-quoted event id."""
    link = event_link("https://gateway.example.com/")
    assert link == "https://gateway.example.com/console/events/by-id/{event_id}"
    assert event_href(link, "evt_1") == "https://gateway.example.com/console/events/by-id/evt_1"
    assert event_href(link, "a/b c") == \
        "https://gateway.example.com/console/events/by-id/a%2Fb%20c"
    assert event_href(None, "evt_1") is None
    assert event_href(link, None) is None
    assert event_link(None) is None and event_link("") is None


def test_without_a_base_url_event_ids_are_plain_text():
    """No base address: the id is shown, no link, and the footer says why."""
    with_link = render_html_string(_report())
    assert '<a href="https://gateway.example.com/v1/events/evt_1">evt_1</a>' in with_link
    without = render_html_string(_report(event_link=None))
    assert "<a " not in without and '<td class="event">evt_1</td>' in without
    assert "GATEWAY_PUBLIC_URL" in without and "GATEWAY_PUBLIC_URL" not in with_link
    no_id = render_html_string(_report(discrepancies=[_discrepancy(event_id=None)]))
    assert "<a " not in no_id


@pytest.mark.parametrize("link", ["/v1/{merchant}/{event_id}", "javascript:alert('{event_id}')"])
def test_a_bad_event_link_is_refused_before_anything_is_sent(link):
    """A format with other fields, or a scheme other than http(s), fails on the first chunk."""
    with pytest.raises(ValueError, match="event_link"):
        next(render_html(_report(event_link=link)))


def test_discrepancies_are_read_once_and_lazily_from_an_iterator():
    """A generator of many rows is consumed once, every row is rendered, and the first chunk
    is sent before the last row is read."""
    read = 0

    def rows():
        nonlocal read
        for i in range(2000):
            read += 1
            yield _discrepancy(provider_id=f"re_{i}")

    chunks = render_html(_report(discrepancies=rows()))
    first = next(chunks)
    assert first.startswith("<!DOCTYPE html>") and read < 2000
    page = first + "".join(chunks)
    assert read == 2000 and page.count("<tr data-kind=") == 2000


def test_the_svg_chart_is_well_formed_xml_with_an_accessible_title():
    """The chart parses as XML, names itself for screen readers and draws a bar per amount."""
    rows = [{"date": f"2026-10-{d:02d}", "currency": "USD", "refunds": 100 * d, "credits": 50,
             "fees": 0} for d in range(1, 31)]
    rows.append({"date": "2026-10-02", "currency": "JPY", "refunds": 999, "credits": 0,
                 "fees": 0})
    root = ET.fromstring(svg_chart(rows, "USD", start=date(2026, 10, 1), end=date(2026, 10, 31)))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img" and "USD" in (root.get("aria-label") or "")
    assert root.get("data-bin") == "day" and root.get("data-bins") == "31"
    assert (root.findtext(f"{SVG}title") or "").startswith("USD")
    assert len(root.findall(f".//{SVG}rect[@class='refunds']")) == 30
    assert len(root.findall(f".//{SVG}rect[@class='credits']")) == 30
    labels = [t.text for t in root.findall(f".//{SVG}g[@class='x-axis']/{SVG}text")]
    assert "Oct 1" in labels and len(labels) < 31  # thinned so labels never overlap


def test_a_year_is_drawn_in_twelve_monthly_bars_per_series():
    """Twelve months of daily rows: twelve refund bars, labelled by month, summed per month."""
    rows = [{"date": date.fromordinal(date(2025, 11, 1).toordinal() + i).isoformat(),
             "currency": "EUR", "refunds": 100, "credits": 0, "fees": 1} for i in range(365)]
    svg = svg_chart(rows, "EUR", start=date(2025, 11, 1), end=date(2026, 10, 31))
    root = ET.fromstring(svg)
    assert root.get("data-bin") == "month" and root.get("data-bins") == "12"
    bars = root.findall(f".//{SVG}rect[@class='refunds']")
    assert len(bars) == 12
    tips = [b.findtext(f"{SVG}title") for b in bars]
    assert tips[0] == "November 2025 refunds: 30.00 EUR"
    assert tips[3] == "February 2026 refunds: 28.00 EUR"
    labels = [t.text for t in root.findall(f".//{SVG}g[@class='x-axis']/{SVG}text")]
    assert labels[:2] == ["Nov 2025", "Dec 2025"]
    assert "refunds, credits and fees per month" in (root.get("aria-label") or "")


@pytest.mark.parametrize("rows", [
    [],
    [{"date": "2026-10-05", "currency": "USD", "refunds": 0, "credits": 0, "fees": 0}],
    [{"date": "2026-10-05", "currency": "USD", "refunds": 1, "credits": 0, "fees": 0}],
    [{"date": "2026-10-05", "currency": "JPY", "refunds": 7, "credits": 3, "fees": 1}],
])
def test_the_svg_chart_handles_an_empty_period_and_a_single_day(rows):
    """Empty, all-zero and one-day charts are still valid SVG with finite coordinates."""
    currency = rows[0]["currency"] if rows else "USD"
    svg = svg_chart(rows, currency)
    root = ET.fromstring(svg)
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    for rect in root.iter(f"{SVG}rect"):
        assert float(rect.get("height", "0")) >= 0


def test_a_zero_decimal_chart_has_no_fractional_ticks():
    """A few yen on the axis are labelled in whole yen."""
    svg = svg_chart([{"date": "2026-10-05", "currency": "JPY", "refunds": 7, "credits": 0,
                      "fees": 0}], "JPY")
    ticks = [t.text or "" for t in
             ET.fromstring(svg).findall(f".//{SVG}g[@class='y-axis']/{SVG}text")]
    assert ticks and not any("." in t for t in ticks if t != "JPY")
