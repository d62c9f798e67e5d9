"""The provider side of a reconciliation: ``ProviderRecord``s from each provider's API or export.

Every source is a generator: one API page or one CSV row in memory at a time. Amounts become
positive integers of minor units (``kind`` says which way the money went); times become UTC.

Stripe: ``GET /v1/balance_transactions`` or the Dashboard's balance history CSV (``id, Type,
Source, Amount, Fee, Net, Currency, Created (UTC), Available On (UTC), Description, ...``).
PayPal: Transaction Search (``GET /v1/reporting/transactions``) or the Activity Download CSV
(``"Date","Time","TimeZone","Name","Type","Status","Currency","Gross","Fee","Net", ...,
"Transaction ID", ..., "Reference Txn ID", ...``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final, Literal

from adapters.paypal_reports import PayPalReports, initiated_at
from adapters.stripe_reports import StripeReports
from policy.money import from_decimal_string, from_major, from_provider_amount
from reports.records import ProviderRecord, RecordKind
from service.config import PayPalSettings, StripeSettings
from service.errors import GatewayError

ExportKind = Literal["stripe_balance_csv", "paypal_activity_csv"]


class ExportError(GatewayError):
    """A file is not an export we can read, or one of its rows is malformed."""


# ---------------------------------------------------------------------------------------- Stripe

_STRIPE_PAYMENT = frozenset({"charge", "payment"})
_STRIPE_REFUND = frozenset({"refund", "payment_refund"})
_STRIPE_DISPUTE_CATEGORIES = frozenset({"dispute", "dispute_reversal"})


def stripe_balance_transactions(adapter_settings: StripeSettings, start: datetime, end: datetime
                                ) -> Iterator[ProviderRecord]:
    """Records of every Stripe balance transaction created in [start, end)."""
    for txn in StripeReports(adapter_settings).balance_transactions(start, end):
        yield from stripe_transaction_records(txn)


def stripe_transaction_records(txn: Mapping[str, Any]) -> Iterator[ProviderRecord]:
    """One balance transaction (API JSON) as its record, plus a FEE record for the fee Stripe
    took on a charge or dispute."""
    currency = str(txn["currency"]).upper()
    source = txn.get("source")
    source_id = _id_of(source) or str(txn["id"])
    kind = _stripe_kind(str(txn["type"]), txn.get("reporting_category"), source_id)
    record = ProviderRecord(
        provider="stripe", kind=kind, provider_id=source_id,
        amount=from_provider_amount("stripe", abs(int(txn["amount"])), currency).amount,
        # A balance transaction exists once the money moved; its own status (available,
        # pending) is about when the funds reach the balance, not whether the charge succeeded.
        currency=currency, status="succeeded",
        created_at=datetime.fromtimestamp(int(txn["created"]), UTC),
        related_id=_related_charge(source) if kind in (RecordKind.REFUND, RecordKind.DISPUTE)
        else None,
    )
    yield record
    fee = int(txn.get("fee") or 0)
    if fee > 0 and kind in (RecordKind.PAYMENT, RecordKind.DISPUTE):
        yield _fee_record(record, from_provider_amount("stripe", fee, currency).amount)


def _stripe_kind(txn_type: str, category: Any, source_id: str) -> RecordKind:
    if txn_type in _STRIPE_PAYMENT:
        return RecordKind.PAYMENT
    if txn_type in _STRIPE_REFUND:
        return RecordKind.REFUND
    if txn_type == "stripe_fee":
        return RecordKind.FEE
    if category in _STRIPE_DISPUTE_CATEGORIES or source_id.startswith(("dp_", "du_")):
        return RecordKind.DISPUTE  # an ``adjustment`` for a dispute, its fee, or its reversal
    return RecordKind.OTHER  # payouts, transfers, other adjustments, ...


def _id_of(source: Any) -> str | None:
    """``source`` is an id, or the object itself when expanded."""
    if isinstance(source, Mapping):
        return str(source["id"]) if source.get("id") else None
    return str(source) if source else None


def _related_charge(source: Any) -> str | None:
    """The charge an (expanded) refund or dispute belongs to."""
    charge = source.get("charge") if isinstance(source, Mapping) else None
    return _id_of(charge)


def _fee_record(record: ProviderRecord, amount: int) -> ProviderRecord:
    return ProviderRecord(
        provider=record.provider, kind=RecordKind.FEE, provider_id=f"{record.provider_id}:fee",
        amount=amount, currency=record.currency, status=record.status,
        created_at=record.created_at, related_id=record.provider_id, source=record.source)


# ---------------------------------------------------------------------------------------- PayPal

_PAYPAL_STATUS: Final[Mapping[str, str]] = {
    "S": "completed", "P": "pending", "V": "reversed", "D": "denied"}
_PAYPAL_REFUND_CODES = frozenset({"T1107"})  # payment refund, initiated by the merchant
_PAYPAL_DISPUTE_CODES = frozenset({"T1106", "T1201"})  # reversal by PayPal; chargeback


def paypal_transactions(settings: PayPalSettings, start: datetime, end: datetime
                        ) -> Iterator[ProviderRecord]:
    """Records of every balance-affecting PayPal transaction initiated in [start, end)."""
    for info in PayPalReports(settings).transactions(start, end):
        yield from paypal_transaction_records(info)


def paypal_transaction_records(info: Mapping[str, Any]) -> Iterator[ProviderRecord]:
    """One Transaction Search ``transaction_info`` as its record, plus a FEE record for a fee
    PayPal charged on it."""
    gross = info.get("transaction_amount") or {}
    currency = str(gross["currency_code"]).upper()
    value = _decimal(gross["value"], "transaction_amount.value")
    code = str(info.get("transaction_event_code") or "")
    kind = _paypal_kind(code, value)
    record = ProviderRecord(
        provider="paypal", kind=kind, provider_id=str(info["transaction_id"]),
        amount=from_decimal_string("paypal", str(abs(value)), currency).amount,
        currency=currency,
        status=_PAYPAL_STATUS.get(str(info.get("transaction_status")),
                                  str(info.get("transaction_status") or "").lower()),
        created_at=initiated_at(info),
        related_id=(info.get("paypal_reference_id") or None)
        if kind in (RecordKind.REFUND, RecordKind.DISPUTE) else None,
    )
    yield record
    fee = info.get("fee_amount") or {}
    charged = _decimal(fee.get("value") or "0", "fee_amount.value")
    if charged < 0:  # a fee taken; a positive fee_amount is a fee PayPal gave back
        yield _fee_record(record, from_decimal_string("paypal", str(-charged), currency).amount)


def _paypal_kind(code: str, gross: Decimal) -> RecordKind:
    if code.startswith("T00"):
        # T00nn are payments either way; one the merchant sent is not a customer's payment
        return RecordKind.PAYMENT if gross > 0 else RecordKind.OTHER
    if code in _PAYPAL_REFUND_CODES:
        return RecordKind.REFUND
    if code in _PAYPAL_DISPUTE_CODES:
        return RecordKind.DISPUTE
    if code.startswith("T01"):  # T01nn: fees not tied to a payment
        return RecordKind.FEE
    return RecordKind.OTHER  # withdrawals, holds, currency conversions, ...


# --------------------------------------------------------------------------------------- Exports

_STRIPE_COLUMNS = ("id", "Type", "Source", "Amount", "Fee", "Net", "Currency", "Created (UTC)")
_PAYPAL_COLUMNS = ("Date", "Time", "TimeZone", "Type", "Status", "Currency", "Gross", "Fee",
                   "Net", "Transaction ID")
_EXPORT_COLUMNS: Final[Mapping[ExportKind, tuple[str, ...]]] = {
    "stripe_balance_csv": _STRIPE_COLUMNS, "paypal_activity_csv": _PAYPAL_COLUMNS}
_EXPORT_NAMES: Final[Mapping[ExportKind, str]] = {
    "stripe_balance_csv": "a Stripe balance history export",
    "paypal_activity_csv": "a PayPal activity download"}


def detect_export(path: Path | str) -> ExportKind:
    """Which export ``path`` is, from its header row; an ExportError names what is missing."""
    header = _header(Path(path))
    missing = {kind: _missing(header, columns) for kind, columns in _EXPORT_COLUMNS.items()}
    for kind, absent in missing.items():
        if not absent:
            return kind
    reasons = "; ".join(f"not {_EXPORT_NAMES[k]} (missing columns: {', '.join(a)})"
                        for k, a in missing.items())
    raise ExportError(f"{path}: unrecognised export: {reasons}")


def stripe_balance_csv(path: Path | str) -> Iterator[ProviderRecord]:
    """Records from a Stripe balance history export (amounts in major units, signed)."""
    for line, row in _rows(Path(path), "stripe_balance_csv"):
        try:
            yield from _stripe_csv_records(row)
        except (KeyError, ValueError, InvalidOperation) as exc:
            raise ExportError(f"{path}, line {line}: {exc}") from exc


def _stripe_csv_records(row: Mapping[str, str]) -> Iterator[ProviderRecord]:
    currency = row["Currency"].strip().upper()
    source_id = row["Source"].strip() or row["id"].strip()
    kind = _stripe_kind(row["Type"].strip(), row.get("Reporting Category", "").strip(), source_id)
    record = ProviderRecord(
        provider="stripe", kind=kind, provider_id=source_id,
        amount=from_major(abs(_decimal(row["Amount"], "Amount")), currency).amount,
        currency=currency,
        # A row is a movement on the balance: the money moved (see stripe_transaction_records).
        status="succeeded",
        created_at=_utc(row["Created (UTC)"], _STRIPE_TIME_FORMATS),
        source="stripe_balance_csv",
    )
    yield record
    fee = _decimal(row["Fee"] or "0", "Fee")
    if fee > 0 and kind in (RecordKind.PAYMENT, RecordKind.DISPUTE):
        yield _fee_record(record, from_major(fee, currency).amount)


def paypal_activity_csv(path: Path | str) -> Iterator[ProviderRecord]:
    """Records from a PayPal Activity Download CSV (US number and date format)."""
    for line, row in _rows(Path(path), "paypal_activity_csv"):
        try:
            yield from _paypal_csv_records(row)
        except (KeyError, ValueError, InvalidOperation) as exc:
            raise ExportError(f"{path}, line {line}: {exc}") from exc


_PAYPAL_CSV_DISPUTES = frozenset({"Payment Reversal", "Chargeback"})


def _paypal_csv_records(row: Mapping[str, str]) -> Iterator[ProviderRecord]:
    currency = row["Currency"].strip().upper()
    gross = _decimal(row["Gross"], "Gross")
    kind = _paypal_csv_kind(row["Type"].strip(), gross)
    record = ProviderRecord(
        provider="paypal", kind=kind, provider_id=row["Transaction ID"].strip(),
        amount=from_decimal_string("paypal", str(abs(gross)), currency).amount,
        currency=currency, status=row["Status"].strip().lower(),
        created_at=_paypal_csv_time(row["Date"], row["Time"], row["TimeZone"]),
        related_id=(row.get("Reference Txn ID") or "").strip() or None
        if kind in (RecordKind.REFUND, RecordKind.DISPUTE) else None,
        source="paypal_activity_csv",
    )
    yield record
    fee = _decimal(row["Fee"] or "0", "Fee")
    if fee < 0:  # PayPal writes a fee taken as negative (Gross + Fee = Net)
        yield _fee_record(record, from_decimal_string("paypal", str(-fee), currency).amount)


def _paypal_csv_kind(row_type: str, gross: Decimal) -> RecordKind:
    if "Refund" in row_type:  # "Payment Refund"
        return RecordKind.REFUND
    if row_type in _PAYPAL_CSV_DISPUTES:
        return RecordKind.DISPUTE
    if row_type.endswith("Payment") and gross > 0:  # Express Checkout / Subscription / ...
        return RecordKind.PAYMENT
    return RecordKind.OTHER  # withdrawals, holds, conversions, payments the merchant sent


# Offsets of the zone abbreviations PayPal writes in TimeZone (the account's own zone).
_ZONES: Final[Mapping[str, int]] = {
    "UTC": 0, "GMT": 0, "PST": -8, "PDT": -7, "MST": -7, "MDT": -6, "CST": -6, "CDT": -5,
    "EST": -5, "EDT": -4, "AKST": -9, "AKDT": -8, "HST": -10, "BST": 1, "CET": 1, "CEST": 2,
    "EET": 2, "EEST": 3, "JST": 9, "HKT": 8, "SGT": 8, "AEST": 10, "AEDT": 11,
}
_STRIPE_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%SZ")


def _paypal_csv_time(date: str, time: str, zone: str) -> datetime:
    offset = _ZONES.get(zone.strip().upper())
    if offset is None:
        raise ValueError(f"unknown TimeZone {zone!r}")
    local = datetime.strptime(f"{date.strip()} {time.strip()}", "%m/%d/%Y %H:%M:%S")
    return (local - timedelta(hours=offset)).replace(tzinfo=UTC)


def _utc(text: str, formats: tuple[str, ...]) -> datetime:
    for fmt in formats:
        try:
            return datetime.strptime(text.strip(), fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"unreadable time {text!r}")


def _decimal(value: Any, name: str) -> Decimal:
    try:
        return Decimal(str(value).strip().replace(",", ""))  # "1,234.56" in US-format exports
    except InvalidOperation:
        raise ValueError(f"{name} is not a number: {value!r}") from None


def _rows(path: Path, kind: ExportKind) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) of an export, after checking its header is the one expected."""
    with path.open(newline="", encoding="utf-8-sig") as handle:  # PayPal writes a BOM
        reader = csv.DictReader(handle, skipinitialspace=True)
        absent = _missing(list(reader.fieldnames or []), _EXPORT_COLUMNS[kind])
        if absent:
            raise ExportError(f"{path}: not {_EXPORT_NAMES[kind]} "
                              f"(missing columns: {', '.join(absent)})")
        for row in reader:
            if any((v or "").strip() for v in row.values() if isinstance(v, str)):
                yield reader.line_num, {k: v or "" for k, v in row.items() if k is not None}


def _header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return [name.strip() for name in next(csv.reader(handle, skipinitialspace=True), [])]


def _missing(header: list[str], required: tuple[str, ...]) -> list[str]:
    present = {name.strip() for name in header}
    return [column for column in required if column not in present]
