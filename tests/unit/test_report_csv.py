"""The report's CSV opens in a spreadsheet as data: a text cell that begins like a formula is
shown as text, and amounts (negative ones included) stay numbers."""

from __future__ import annotations

import csv
import io

from reports.formats import to_csv
from reports.records import Discrepancy, DiscrepancyKind


def _rows(*items: Discrepancy) -> list[list[str]]:
    text = "".join(to_csv({"discrepancies": list(items)}))
    return list(csv.reader(io.StringIO(text)))[1:]


def test_a_cell_that_begins_like_a_formula_is_text():
    hostile = Discrepancy(DiscrepancyKind.AMOUNT_MISMATCH, "stripe", "=cmd|'/c calc'!A0", "USD",
                          1000, 1200, '=HYPERLINK("https://evil.example","open")',
                          event_id="+evt_1")
    (row,) = _rows(hostile)
    assert row[2] == "'=cmd|'/c calc'!A0"
    assert row[9] == "'=HYPERLINK(\"https://evil.example\",\"open\")"
    assert row[8] == "'+evt_1"
    assert row[6] == "-2.00"  # the difference, a number a spreadsheet adds up


def test_ordinary_cells_are_left_as_they_are():
    plain = Discrepancy(DiscrepancyKind.MISSING_IN_LEDGER, "paypal", "8MC585209K746392H", "EUR",
                        None, 1500, "a refund we never recorded", event_id="WH-1")
    (row,) = _rows(plain)
    assert (row[2], row[8], row[9]) == ("8MC585209K746392H", "WH-1", "a refund we never recorded")
