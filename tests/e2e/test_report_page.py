"""The HTML report as a browser draws it: Debian's headless chromium screenshots it and dumps its
DOM."""

from __future__ import annotations

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
        "event_link": "/v1/events/{event_id}",
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
    assert dom.count("<svg") == 2
    assert 'aria-label="USD: refunds, credits and fees per day"' in dom
    assert dom.count("<tr data-kind=") == 12
    for kind in DiscrepancyKind:
        assert f'data-kind="{kind.value}"' in dom
    assert '<a href="/v1/events/evt_1">evt_1</a>' in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    assert "<script>" not in dom
    assert "1,234,567.89" in dom
