"""The HTML report as a browser draws it: Debian's headless chromium screenshots it, dumps its
DOM, and measures its layout at 1280 px wide (a script added to a copy of the page writes the
measurements into the DOM; the report itself has no script).

Set REPORT_SCREENSHOT_DIR to keep the screenshots for a person to look at; otherwise they are
written to the test's temporary directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reports.html import render_html
from reports.records import Discrepancy, DiscrepancyKind

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium on PATH "
                                "(apt-get install -y chromium)")
K = DiscrepancyKind


def _daily(currency: str, scale: int) -> list[dict[str, Any]]:
    """Thirty-one days of October, quiet on Sundays, with a few spikes."""
    rows = []
    for i in range(31):
        day = date(2026, 10, 1) + timedelta(days=i)
        if day.weekday() == 6:
            continue
        rows.append({"date": day.isoformat(), "currency": currency,
                     "refunds": scale * ((i * 37) % 23 + (40 if i in (6, 19) else 0)),
                     "credits": scale * ((i * 11) % 7) * 3, "fees": scale * (i % 4 + 1)})
    return rows


def _discrepancies() -> list[Discrepancy]:
    at = datetime(2026, 10, 3, 9, 15, tzinfo=UTC)
    specs = [
        (K.AMOUNT_MISMATCH, "stripe", "re_3QxAmount01", "USD", 2000, 1800, "evt_1"),
        (K.AMOUNT_MISMATCH, "paypal", "8HX12345AB678901C", "JPY", 5000, 4500, "WH-77"),
        (K.MISSING_IN_LEDGER, "stripe", "ch_3QxMissingLedger", "USD", None, 12999, None),
        (K.MISSING_AT_PROVIDER, "stripe", "re_3QxNeverSent", "USD", 4500, None, "evt_3"),
        (K.CURRENCY_MISMATCH, "paypal", "9TY0000CURR", "EUR", 1000, 1000, "WH-80"),
        (K.STATUS_MISMATCH, "stripe", "re_3QxPending", "USD", 700, 700, "evt_5"),
        (K.UNSOLICITED_REFUND, "stripe", "re_3QxDashboard", "USD", None, 2500, None),
        (K.ACTION_NOT_EXECUTED, "paypal", "act_0192-refund", "JPY", 12000, None, "WH-81"),
        (K.ACTION_STUCK, "stripe", "act_0193-refund", "USD", 3300, None, "evt_7"),
        (K.MISSED_EVENT, "stripe", "evt_1QxNeverArrived", "USD", None, None, None),
        (K.MISSING_IN_LEDGER, "paypal", "<script>alert(1)</script>", "JPY", None, 800, None),
        (K.AMOUNT_MISMATCH, "stripe", "re_3QxVeryLongIdentifierThatMustWrapInsideItsCell0123456789",
         "USD", 123456789, 123456700, "evt_9"),
    ]
    return [Discrepancy(kind, prov, pid, cur, led, pam,
                        f"{kind.value.replace('_', ' ')} on {pid} (seen by the nightly run)",
                        event_id=ev, occurred_at=at + timedelta(days=n, hours=n))
            for n, (kind, prov, pid, cur, led, pam, ev) in enumerate(specs)]


def _figures(scale: int, matched: int, discrepancies: int) -> dict[str, Any]:
    return {"gross_charges": 1234000 * scale, "refunds": 23000 * scale,
            "refunds_by_outcome": {"full_refund": 20000 * scale, "partial_refund": 3000 * scale},
            "refunds_by_clause": {"003 §1.1": 20000 * scale, "review": 3000 * scale},
            "credit_granted": 9500 * scale, "credit_used": 0, "fees_retained": 500 * scale,
            "deductions_retained": 1000 * scale, "late_fees": 5000 * scale,
            "service_credits": 7000 * scale, "overpayments_refunded": 4750 * scale,
            "overpayments_credited": 9500 * scale, "provider_fees": 36000 * scale,
            "matched": matched, "discrepancies": discrepancies}


def sample_report() -> dict[str, Any]:
    """Two currencies, a month of daily rows, a dozen discrepancies of every kind."""
    return {
        "merchant": "theopenhost", "from": "2026-10-01", "to": "2026-11-01",
        "generated_at": "2026-11-21T22:40:00Z",
        "currencies": {"USD": _figures(1, 812, 9), "JPY": _figures(1, 143, 3)},
        "daily": _daily("USD", 100) + _daily("JPY", 150),
        "discrepancies": iter(_discrepancies()),  # an iterator, as the report model may give
        "event_link": "https://gateway.example.com/v1/events/{event_id}",
    }


def _chromium(page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    args = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={profile}", *extra, page.as_uri()]
    # Its own session, so a hang (a dialog, say) ends with every helper process it started.
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"chromium did not finish in 60 s:\n{err[-2000:]}")
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def _assert_not_one_colour(png: Path) -> None:
    try:
        from PIL import Image
    except ImportError:
        # Without Pillow: a blank 1280x2000 page compresses to a few KB; ours is far larger.
        assert png.stat().st_size > 40_000, f"screenshot suspiciously small: {png.stat().st_size}"
        return
    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is None or len(colours) > 10, "the screenshot is (nearly) one colour"


@pytest.fixture
def page(tmp_path: Path) -> Path:
    path = tmp_path / "report.html"
    with path.open("w", encoding="utf-8") as out:
        for chunk in render_html(sample_report()):
            out.write(chunk)
    return path


def test_chromium_screenshots_the_report_as_a_non_blank_page(page, tmp_path):
    """The page renders to a full-size PNG that is not blank."""
    shot = tmp_path / "report.png"
    result = _chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.exists(), f"no screenshot; chromium said:\n{result.stderr[-2000:]}"
    data = shot.read_bytes()
    assert _png_size(data) == (1280, 2000)
    assert len(data) > 20_000
    _assert_not_one_colour(shot)


def test_the_rendered_dom_holds_the_figures_the_charts_and_every_discrepancy(page, tmp_path):
    """Chromium's parsed DOM has the summary figures, one chart per currency and 12 rows."""
    result = _chromium(page, tmp_path, "--dump-dom")
    dom = result.stdout
    assert "Reconciliation report: theopenhost" in dom, result.stderr[-2000:]
    assert "2026-10-01 to 2026-10-31" in dom
    assert "12,340.00" in dom  # USD gross charges, major units
    assert "1,234,000" in dom and "1,234,000.00" not in dom  # JPY has no decimals
    assert dom.count("<svg") == 2 and dom.count('data-bin="day"') == 2
    assert 'aria-label="USD: refunds, credits and fees per day"' in dom
    assert dom.count("<tr data-kind=") == 12
    for kind in DiscrepancyKind:
        assert f'data-kind="{kind.value}"' in dom
    assert '<a href="https://gateway.example.com/v1/events/evt_1">evt_1</a>' in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<script>" not in dom
    assert "1,234,567.89" in dom


# --- a year of a real merchant, at 1280 px ----------------------------------------------------

BASE_URL = "https://gateway.example.com"
VIEWPORT = 1280
YEAR_FROM, YEAR_TO = date(2025, 11, 1), date(2026, 11, 1)

# What a browser measures, written into the DOM for --dump-dom to carry out. Only the test's
# copy of the page has it.
MEASURE = """<script>
(() => {
  const doc = document.documentElement;
  const view = doc.clientWidth;
  const name = (el) => el.tagName.toLowerCase()
    + (typeof el.className === "string" && el.className ? "." + el.className : "");
  const overflowing = [], outside = [];
  for (const el of document.querySelectorAll("body *")) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && (box.right > view + 0.5 || box.left < -0.5)) outside.push(name(el));
    if (el instanceof HTMLElement && el.scrollWidth > el.clientWidth + 1
        && getComputedStyle(el).overflowX !== "visible") overflowing.push(name(el));
  }
  const table = document.querySelector("table.discrepancies");
  const panel = table.parentElement.getBoundingClientRect();
  const cells = [...table.querySelectorAll("td.event")];
  const bars = [...document.querySelectorAll("svg rect.refunds")];
  const out = document.createElement("pre");
  out.id = "measurements";
  out.textContent = JSON.stringify({
    innerWidth: window.innerWidth, clientWidth: view, scrollWidth: doc.scrollWidth,
    bodyScrollWidth: document.body.scrollWidth, height: doc.scrollHeight,
    overflowing: overflowing.slice(0, 20), outside: outside.slice(0, 20),
    eventCells: cells.length,
    eventCellsClipped: cells.filter((c) => c.getBoundingClientRect().right > panel.right + 0.5
                                           || c.scrollWidth > c.clientWidth + 1).length,
    tableWidth: table.getBoundingClientRect().width, panelWidth: panel.width,
    bars: bars.length, narrowestBar: Math.min(...bars.map((b) => b.getBoundingClientRect().width)),
  });
  document.body.appendChild(out);
})();
</script>"""


def _stripe_id(prefix: str, n: int) -> str:
    """A Stripe-shaped id: prefix, '3Q', then base62, 27+ characters in all."""
    alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    body = "".join(alphabet[(n * 7919 + i * 104729) % 62] for i in range(22))
    return f"{prefix}_3Q{body}"


def _paypal_id(n: int) -> str:
    return f"{n % 10}{chr(65 + n % 26)}X{n:05d}AB{n * 37 % 1000:03d}91{chr(67 + n % 20)}"


def _year_discrepancies() -> list[Discrepancy]:
    """Forty rows over the year with real-length ids: Stripe charges, refunds and events,
    PayPal captures and WH- events, 60-character action keys, and the largest yen amounts."""
    start = datetime.combine(YEAR_FROM, datetime.min.time(), UTC)
    kinds = list(DiscrepancyKind)
    rows = []
    for n in range(40):
        kind = kinds[n % len(kinds)]
        if n % 3 == 2:
            provider, currency = "paypal", "EUR"
            pid = _paypal_id(n)
            event = f"WH-{n:02d}W{n * 31 % 97:02d}XX4NR3184443K-6B9460592M4878{n:02d}R"
        else:
            provider, currency = "stripe", ("USD", "JPY")[n % 4 == 3]
            pid = _stripe_id(("ch", "re", "pi", "txn")[n % 4], n)
            event = _stripe_id("evt", n + 1000)
        if kind in (K.ACTION_NOT_EXECUTED, K.ACTION_STUCK):
            pid = f"act_0193b1f2-7c4e-7d3a-9f1e-5b2c8d4e6f{n:02d}:refund:{pid}"[:60]
        ledger = 123456789012 if currency == "JPY" else 9_999_999_99 - n
        rows.append(Discrepancy(
            kind, provider, pid, currency, ledger, ledger - 1 - n,
            f"{kind.value.replace('_', ' ')}: {pid} differs from idempotency key "
            f"act_0193b1f2-7c4e-7d3a-9f1e-5b2c8d4e6f{n:02d}-refund-2026-10-03-0001",
            event_id=None if kind is K.MISSED_EVENT else event,
            occurred_at=start + timedelta(days=9 * n, hours=n)))
    return rows


def _year_daily() -> list[dict[str, Any]]:
    rows = []
    for i in range((YEAR_TO - YEAR_FROM).days):
        day = (YEAR_FROM + timedelta(days=i)).isoformat()
        rows.append({"date": day, "currency": "USD", "refunds": 1000 + (i * 37) % 900,
                     "credits": 300 * (i % 5), "fees": 29 + i % 11})
        if i % 13 == 0:
            rows.append({"date": day, "currency": "EUR", "refunds": 2500, "credits": 0,
                         "fees": 35})
    return rows


def year_report() -> dict[str, Any]:
    """Twelve months, four currencies (JPY with no activity at all, GBP with charges only)."""
    zeros = dict.fromkeys(("gross_charges", "refunds", "credit_granted", "provider_fees",
                           "matched", "discrepancies"), 0)
    return {
        "merchant": "theopenhost", "from": YEAR_FROM.isoformat(), "to": YEAR_TO.isoformat(),
        "generated_at": "2026-11-02T03:00:00Z",
        "currencies": {"USD": _figures(40, 95_210, 26), "EUR": _figures(3, 4_812, 14),
                       "GBP": {**zeros, "gross_charges": 1_250_000, "matched": 212},
                       "JPY": zeros},
        "daily": _year_daily(),
        "discrepancies": iter(_year_discrepancies()),
        "event_link": f"{BASE_URL}/v1/events/{{event_id}}",
    }


def _screenshot_dir(tmp_path: Path) -> Path:
    chosen = os.environ.get("REPORT_SCREENSHOT_DIR")
    path = Path(chosen) if chosen else tmp_path
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def year_page(tmp_path: Path) -> Path:
    path = tmp_path / "year.html"
    path.write_text("".join(render_html(year_report())), encoding="utf-8")
    return path


def _measure(page: Path, tmp_path: Path) -> tuple[dict[str, Any], str]:
    measured = tmp_path / "measured.html"
    measured.write_text(page.read_text(encoding="utf-8").replace("</body>", MEASURE + "</body>"),
                        encoding="utf-8")
    result = _chromium(measured, tmp_path, "--dump-dom", f"--window-size={VIEWPORT},1000")
    dom = result.stdout
    start = dom.find('<pre id="measurements">')
    assert start >= 0, f"no measurements; chromium said:\n{result.stderr[-2000:]}"
    text = dom[start:].split(">", 1)[1].split("</pre>", 1)[0]
    return json.loads(text.replace("&quot;", '"').replace("&amp;", "&")), dom


def test_a_year_with_real_length_ids_fits_1280_pixels(year_page, tmp_path):
    """At 1280 px nothing overflows sideways: the page, the table (whose Event column is whole,
    not clipped or scrolled) and every element stay inside the viewport."""
    m, _ = _measure(year_page, tmp_path)
    assert m["innerWidth"] == VIEWPORT, m
    assert m["scrollWidth"] <= m["innerWidth"] and m["bodyScrollWidth"] <= m["clientWidth"], m
    assert m["overflowing"] == [] and m["outside"] == [], m
    assert m["eventCells"] == 40 and m["eventCellsClipped"] == 0, m
    assert m["tableWidth"] <= m["panelWidth"], m


def test_a_year_is_charted_by_month_and_quiet_currencies_are_one_line(year_page, tmp_path):
    """Two charts (USD, EUR) of twelve monthly bars each, wide enough to read; JPY is one
    line; every event link is absolute under the base address."""
    m, dom = _measure(year_page, tmp_path)
    assert dom.count("<svg") == 2
    assert dom.count('data-bin="month"') == 2 and dom.count('data-bins="12"') == 2
    assert "Refunds, credits and fees per month" in dom
    assert m["bars"] == 24 and m["narrowestBar"] >= 10, m
    assert 'data-quiet="JPY">JPY: no activity<' in dom
    assert 'data-quiet-charts="GBP JPY">No refunds, credits or fees in GBP, JPY.<' in dom
    hrefs = [part.split('"', 1)[0] for part in dom.split('<a href="')[1:]]
    assert len(hrefs) == sum(1 for d in _year_discrepancies() if d.event_id) > 30
    assert all(h.startswith(f"{BASE_URL}/v1/events/") for h in hrefs), hrefs[:3]


def test_a_screenshot_of_the_year_at_1280_pixels_for_a_person_to_look_at(year_page, tmp_path):
    """The whole page, at its measured height, as a PNG (REPORT_SCREENSHOT_DIR keeps it)."""
    m, _ = _measure(year_page, tmp_path)
    shot = _screenshot_dir(tmp_path) / "report-year-1280.png"
    height = min(int(m["height"]) + 16, 16_000)
    result = _chromium(year_page, tmp_path, f"--screenshot={shot}",
                       f"--window-size={VIEWPORT},{height}", "--hide-scrollbars")
    assert shot.exists(), f"no screenshot; chromium said:\n{result.stderr[-2000:]}"
    assert _png_size(shot.read_bytes()) == (VIEWPORT, height)
    _assert_not_one_colour(shot)
