"""The HTML report's pure parts: escaping, amounts, links, the empty cases and the SVG chart."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from typing import Any

import pytest

from reports.html import (
    event_href,
    format_amount,
    render_html,
    render_html_string,
    svg_chart,
)
from reports.records import Discrepancy, DiscrepancyKind

SVG = "{http://www.w3.org/2000/svg}"


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
        "event_link": "/v1/events/{event_id}",
    }
    report.update(overrides)
    return report


def _svg_root(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_a_provider_id_with_a_script_tag_is_escaped():
    """Markup in any report string reaches the page as text, never as a tag."""
    evil = _discrepancy(provider_id="<script>alert(1)</script>", detail='"><img src=x>',
                        event_id='e"1')
    page = render_html_string(_report(merchant="<b>shop</b>", discrepancies=[evil]))
    assert "<script>" not in page and "<img" not in page and "<b>shop" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;shop&lt;/b&gt;" in page
    assert 'href="/v1/events/e%221"' in page


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
    assert "No daily movements in this period." in page
    assert "No discrepancies" in page


def test_a_currency_with_no_daily_rows_gets_an_empty_chart():
    """A currency with figures but no movements still has a chart, saying it is empty."""
    page = render_html_string(_report(daily=[]))
    assert page.count("<svg") == 1
    assert "No refunds, credits or fees in this period" in page


def test_event_links_use_the_report_format_and_quote_the_id():
    """The link is the format string filled with the URL-quoted event id."""
    assert event_href("/v1/events/{event_id}", "evt_1") == "/v1/events/evt_1"
    assert event_href("/v1/events/{event_id}", "a/b c") == "/v1/events/a%2Fb%20c"
    assert event_href(None, "evt_1") is None
    assert event_href("/v1/events/{event_id}", None) is None


def test_rows_link_to_their_event_only_when_both_id_and_format_are_present():
    """No event_link in the report, or no event id on the row, means no link."""
    with_link = render_html_string(_report())
    assert '<a href="/v1/events/evt_1">evt_1</a>' in with_link
    without = render_html_string(_report(event_link=None))
    assert "<a href" not in without and "evt_1" in without
    no_id = render_html_string(_report(discrepancies=[_discrepancy(event_id=None)]))
    assert "<a href" not in no_id


def test_an_event_link_with_other_fields_is_refused_before_anything_is_sent():
    """A bad format string fails on the first chunk, not halfway through the table."""
    with pytest.raises(ValueError, match="event_id"):
        next(render_html(_report(event_link="/v1/{merchant}/{event_id}")))


def test_discrepancies_are_read_once_from_an_iterator():
    """A generator of many rows is consumed once and every row is rendered."""
    rows = (_discrepancy(provider_id=f"re_{i}") for i in range(120))
    chunks = list(render_html(_report(discrepancies=rows)))
    page = "".join(chunks)
    assert page.count("<tr data-kind=") == 120
    assert len(chunks) > 5  # streamed in parts, not one string


def test_the_svg_chart_is_well_formed_xml_with_an_accessible_title():
    """The chart parses as XML, names itself for screen readers and draws a bar per amount."""
    rows = [{"date": f"2026-10-{d:02d}", "currency": "USD", "refunds": 100 * d, "credits": 50,
             "fees": 0} for d in range(1, 31)]
    rows.append({"date": "2026-10-02", "currency": "JPY", "refunds": 999, "credits": 0,
                 "fees": 0})
    root = _svg_root(svg_chart(rows, "USD", start=date(2026, 10, 1), end=date(2026, 10, 31)))
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img" and "USD" in (root.get("aria-label") or "")
    assert (root.findtext(f"{SVG}title") or "").startswith("USD")
    assert len(root.findall(f".//{SVG}rect[@class='refunds']")) == 30
    assert len(root.findall(f".//{SVG}rect[@class='credits']")) == 30
    labels = [t.text for t in root.findall(f".//{SVG}g[@class='x-axis']/{SVG}text")]
    assert "Oct 1" in labels and len(labels) < 31  # thinned so labels never overlap


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
    root = _svg_root(svg)
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    for rect in root.iter(f"{SVG}rect"):
        assert float(rect.get("height", "0")) >= 0


def test_a_zero_decimal_chart_has_no_fractional_ticks():
    """A few yen on the axis are labelled in whole yen."""
    svg = svg_chart([{"date": "2026-10-05", "currency": "JPY", "refunds": 7, "credits": 0,
                      "fees": 0}], "JPY")
    ticks = [t.text or "" for t in
             _svg_root(svg).findall(f".//{SVG}g[@class='y-axis']/{SVG}text")]
    assert ticks and not any("." in t for t in ticks if t != "JPY")
