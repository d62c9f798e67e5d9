"""The report as CSV (one header row, ISO dates, major units beside the currency) and JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from policy.money import Money, exponent
from reports.records import Discrepancy

CSV_COLUMNS = ["kind", "provider", "provider_id", "currency", "ledger_amount",
               "provider_amount", "difference", "occurred_at", "event_id", "detail"]


def major(amount: int | None, currency: str) -> str:
    """Minor units as a major-unit decimal string ("12.34", "1000" for JPY); "" for none."""
    if amount is None:
        return ""
    return f"{Money(amount, currency).to_decimal():.{exponent(currency)}f}"


def discrepancy_json(d: Discrepancy) -> dict[str, Any]:
    return {"kind": d.kind.value, "provider": d.provider, "provider_id": d.provider_id,
            "currency": d.currency, "ledger_amount": d.ledger_amount,
            "provider_amount": d.provider_amount, "detail": d.detail, "event_id": d.event_id,
            "occurred_at": _iso(d.occurred_at)}


def to_json(report: dict[str, Any]) -> str:
    body = {**report, "discrepancies": [discrepancy_json(d) for d in report["discrepancies"]]}
    return json.dumps(body, indent=2)


def to_csv(report: dict[str, Any]) -> Iterator[str]:
    """The discrepancy table, one row each, as a spreadsheet expects it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield _drain(buffer)
    for d in report["discrepancies"]:
        difference = (None if d.ledger_amount is None or d.provider_amount is None
                      else d.ledger_amount - d.provider_amount)
        writer.writerow([d.kind.value, d.provider, _text(d.provider_id), d.currency,
                         major(d.ledger_amount, d.currency), major(d.provider_amount, d.currency),
                         major(difference, d.currency), _iso(d.occurred_at) or "",
                         _text(d.event_id or ""), _text(d.detail)])
        yield _drain(buffer)


_FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as a formula's start


def _text(value: str) -> str:
    """A text cell that a spreadsheet shows as text: one that begins like a formula (an id or
    a provider's message can carry ``=HYPERLINK(...)``) gets a leading apostrophe, as OWASP
    advises for CSV injection. Amounts are written by ``major`` and never pass here."""
    return f"'{value}" if value.startswith(_FORMULA) else value


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
