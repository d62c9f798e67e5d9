"""The Case boundary, field by field: a Case the schema accepts but the builder must refuse is
refused with a CaseError naming exactly the offending field and saying what is wrong; a schema
error names the first missing or unknown field; an optional field left out takes its default."""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest

from policy import CaseError, case_from_json, case_to_json
from policy.case import Identity, ReasonCode, UptimeCause, UptimeSource

from .builders import T0, case, invoices, iso, money, order

DELETE = object()  # as a value in a change: remove the key


def base() -> dict[str, Any]:
    """A valid Case with every part: order, usage, payment, uptime, two invoices."""
    data = case("refund", T0, order=order(),
                usage={"bandwidth_bytes": 5, "sessions": 1},
                payment={"amount": money(5000), "received_at": "2025-03-02T10:00:00Z",
                         "overpaid_amount": money(1200)},
                uptime={"measured_percent": "97.5", "incident_at": "2025-03-03T00:00:00Z"})
    data["account"]["invoices"] = invoices(("INV-1", T0, True),
                                           ("INV-2", T0 + timedelta(30), False))
    return data


def changed(changes: dict[str, Any]) -> dict[str, Any]:
    """``base()`` with each dotted path set to its value (list items by index), or removed."""
    data = base()
    for path, value in changes.items():
        *parents, last = path.split(".")
        target: Any = data
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        if value is DELETE:
            del target[last]
        else:
            target[last] = copy.deepcopy(value)
    return data


def whole(path: str, value: float) -> tuple[dict[str, Any], str, str]:
    """A float where a whole number is due: the schema counts 5.0 as an integer, the builder
    does not."""
    return {path: value}, path, f"must be a whole number, got {value!r}"


REFUSALS: list[tuple[dict[str, Any], str, str]] = [
    # Schema errors: the first missing field (in the schema's order), the first unknown one
    # (alphabetically), each alone.
    ({"payment.received_at": DELETE, "payment.amount": DELETE}, "payment.amount", "is required"),
    ({"order.size": "L", "order.colour": "blue"}, "order.colour", "is not a known field"),
    ({"colour": "blue"}, "colour", "is not a known field"),
    # Whole numbers.
    whole("usage.bandwidth_bytes", 5.0),
    whole("usage.sessions", 1.0),
    whole("payment.amount.amount", 5000.0),
    whole("payment.overpaid_amount.amount", 1200.0),
    whole("order.amount.amount", 12000.0),
    whole("order.term_months", 2.0),
    whole("account.prior_guarantee_refunds", 1.0),
    whole("account.violations", 1.0),
    whole("account.invoices.0.amount.amount", 1000.0),
    whole("account.invoices.1.amount.amount", 1000.0),
    ({"account.credit_balance": {"amount": 700.0, "currency": "USD"}},
     "account.credit_balance.amount", "must be a whole number, got 700.0"),
    ({"payment.refundable": {"amount": 300.0, "currency": "USD"}},
     "payment.refundable.amount", "must be a whole number, got 300.0"),
    ({"order.refundable": {"amount": 300.0, "currency": "USD"}},
     "order.refundable.amount", "must be a whole number, got 300.0"),
    # A part of a payment: in its currency, at most its amount.
    ({"payment.overpaid_amount.currency": "EUR"}, "payment.overpaid_amount.currency",
     "must equal payment.amount.currency (USD)"),
    ({"payment.overpaid_amount.amount": 5001}, "payment.overpaid_amount.amount",
     "cannot exceed payment.amount.amount"),
    ({"payment.refundable": money(3000, "EUR")}, "payment.refundable.currency",
     "must equal payment.amount.currency (USD)"),
    ({"payment.refundable": money(5001)}, "payment.refundable.amount",
     "cannot exceed payment.amount.amount"),
    ({"order.refundable": money(3000, "EUR")}, "order.refundable.currency",
     "must equal order.amount.currency (USD)"),
    ({"order.refundable": money(12001)}, "order.refundable.amount",
     "cannot exceed order.amount.amount"),
    ({"account.invoices": invoices(("INV-1", T0, True), ("INV-1", T0 + timedelta(30), False))},
     "account.invoices", "invoice numbers must be unique"),
    # Date-times the pattern lets through.
    ({"payment.received_at": "1999-12-31T23:59:59Z"}, "payment.received_at",
     "'1999-12-31T23:59:59Z' is not between 2000 and 2100"),
    ({"uptime.incident_at": "2100-01-01T00:00:00Z"}, "uptime.incident_at",
     "'2100-01-01T00:00:00Z' is not between 2000 and 2100"),
    ({"request.received_at": "2025-02-30T00:00:00Z"}, "request.received_at",
     "not a valid ISO 8601 date-time: '2025-02-30T00:00:00Z'"),
    ({"order.ordered_at": "0001-01-01T00:00:00+01:00"}, "order.ordered_at",
     "'0001-01-01T00:00:00+01:00' is outside the calendar in UTC"),
    ({"order.service_date": "1999-12-31T23:59:59Z"}, "order.service_date",
     "'1999-12-31T23:59:59Z' is not between 2000 and 2100"),
    ({"account.invoices.1.notified_at": "2025-02-30T00:00:00Z"}, "account.invoices.1.notified_at",
     "not a valid ISO 8601 date-time: '2025-02-30T00:00:00Z'"),
    # Due dates: a date-time, or a date on the merchant's calendar.
    ({"account.invoices.0.due_at": "2025-02-30"}, "account.invoices.0.due_at",
     "not a valid date: '2025-02-30'"),
    ({"account.invoices.1.due_at": "2025-02-30T00:00:00Z"}, "account.invoices.1.due_at",
     "not a valid ISO 8601 date-time: '2025-02-30T00:00:00Z'"),
    ({"account.invoices.1.due_at": "2100-01-01"}, "account.invoices.1.due_at",
     "'2100-01-01' is not between 2000 and 2100"),
    ({"order.next_billing_at": "1999-12-31"}, "order.next_billing_at",
     "'1999-12-31' is not between 2000 and 2100"),
    ({"order.next_billing_at": "2100-01-01T00:00:00Z"}, "order.next_billing_at",
     "'2100-01-01T00:00:00Z' is not between 2000 and 2100"),
    # A number the schema accepts that is not a decimal (a Python caller's Fraction).
    ({"uptime.measured_percent": Fraction(1, 2)}, "uptime.measured_percent",
     "not a number: Fraction(1, 2)"),
    # NaN, which Python's json.loads reads by default (a case file given to `gateway policy
    # evaluate`), passes the schema's minimum and maximum: refused here, never a traceback.
    ({"uptime.measured_percent": float("nan")}, "uptime.measured_percent", "not a number: nan"),
    # Outside 0 to 100, however it is given (the schema's bounds and pattern).
    ({"uptime.measured_percent": 100.5}, "uptime.measured_percent",
     "100.5 is greater than the maximum of 100"),
    ({"uptime.measured_percent": -1}, "uptime.measured_percent",
     "-1 is less than the minimum of 0"),
    ({"uptime.measured_percent": Decimal("100.01")}, "uptime.measured_percent",
     "Decimal('100.01') is greater than the maximum of 100"),
    ({"uptime.measured_percent": "100.5"}, "uptime.measured_percent",
     r"'100.5' does not match '^(100(\\.0+)?|[0-9]{1,2}(\\.[0-9]+)?)$'"),
    ({"time_zone": "Mars/Olympus"}, "time_zone",
     "'Mars/Olympus' is not an IANA time zone (e.g. 'Europe/London')"),
]


@pytest.mark.parametrize(("changes", "field", "message"), REFUSALS,
                         ids=[f"{field}:{message}" for _, field, message in REFUSALS])
def test_an_invalid_case_is_refused_naming_the_field_and_the_fault(
        changes: dict[str, Any], field: str, message: str) -> None:
    """The CaseError names exactly the offending field and says what is wrong with it."""
    with pytest.raises(CaseError) as raised:
        case_from_json(changed(changes))
    assert (raised.value.field, raised.value.message) == (field, message)
    assert str(raised.value) == f"{field}: {message}"


@pytest.mark.parametrize("changes", [
    {"payment.overpaid_amount.amount": 5000},
    {"payment.refundable": money(5000)},
    {"payment.refundable": money(0)},
    {"order.refundable": money(12000)},
    {"uptime.measured_percent": 100},
    {"uptime.measured_percent": "0"},
    {"request.received_at": "2000-01-01T00:00:00Z"},
    {"order.next_billing_at": "2099-12-31"},
    {"order.next_billing_at": "2000-01-01"},
    {"account.invoices.0.due_at": "2099-12-31T23:59:59Z"},
], ids=str)
def test_the_bounds_themselves_are_accepted(changes: dict[str, Any]) -> None:
    """A part equal to the payment, and the first and last moments of the range, are valid."""
    case_from_json(changed(changes))


def minimal() -> dict[str, Any]:
    """Every part present with only its required fields."""
    return {
        "request": {"kind": "refund", "received_at": iso(T0)},
        "account": {"invoices": [{"number": "INV-1", "amount": money(1000),
                                  "due_at": iso(T0)}]},
        "order": {"type": "new", "product_category": "web_hosting", "ordered_at": iso(T0),
                  "amount": money(12000)},
        "usage": {},
        "payment": {"amount": money(5000), "received_at": iso(T0),
                    "overpaid_amount": money(1200)},
        "uptime": {"measured_percent": "97.5", "incident_at": iso(T0)},
    }


DEFAULTS: list[tuple[str, str, Any]] = [
    ("request", "reason", ""),
    ("request", "reason_code", ReasonCode.OTHER),
    ("request", "immediate", False),
    ("request", "invoice_number", None),
    ("request", "identity", Identity()),
    ("account", "prior_guarantee_refunds", 0),
    ("account", "suspended_for_breach", False),
    ("account", "violations", 0),
    ("account", "credit_balance", None),
    ("account", "in_collection", False),
    ("invoice", "paid", False),
    ("invoice", "notified_at", None),
    ("order", "term_months", 1),
    ("order", "auto_renew", False),
    ("order", "next_billing_at", None),
    ("order", "payment_provider", ""),
    ("order", "payment_method", ""),
    ("order", "addons", ()),
    ("order", "service_state", None),
    ("order", "service_date", None),
    ("order", "refundable", None),
    ("order", "dispute", None),
    ("usage", "bandwidth_bytes", 0),
    ("usage", "sessions", 0),
    ("usage", "used_since_renewal", False),
    ("payment", "provider", ""),
    ("payment", "via_subscription", False),
    ("payment", "refundable", None),
    ("payment", "dispute", None),
    ("uptime", "cause", UptimeCause.OTHER),
    ("uptime", "source", UptimeSource.MERCHANT_MONITORING),
]


@pytest.mark.parametrize(("part", "name", "default"), DEFAULTS,
                         ids=[f"{part}.{name}" for part, name, _ in DEFAULTS])
def test_an_optional_field_left_out_takes_its_default(part: str, name: str,
                                                      default: Any) -> None:
    """The documented default, of the documented type (False, not None; "", not None)."""
    read = case_from_json(minimal())
    owner = read.account.invoices[0] if part == "invoice" else getattr(read, part)
    value = getattr(owner, name)
    assert value == default
    assert type(value) is type(default)


def test_a_case_without_optional_parts_has_none_of_them() -> None:
    """Parts left out are None, the time zone UTC, the account empty."""
    data = minimal()
    for part in ("order", "usage", "payment", "uptime"):
        del data[part]
    data["request"]["kind"] = "overdue_invoice"
    data["request"]["invoice_number"] = "INV-1"
    data["account"] = {}
    read = case_from_json(data)
    assert (read.order, read.usage, read.payment, read.uptime) == (None, None, None, None)
    assert read.time_zone == "UTC"
    assert read.account.invoices == ()


def test_a_decimal_string_uptime_is_read_exactly() -> None:
    """A string keeps its exact decimal; a number is read as written."""
    exact = case_from_json(changed({"uptime.measured_percent": "99.895"})).uptime
    assert exact is not None and exact.measured_percent == Decimal("99.895")
    number = case_from_json(changed({"uptime.measured_percent": 97.5})).uptime
    assert number is not None and number.measured_percent == Decimal("97.5")


def test_a_payment_left_without_a_provider_is_written_without_one() -> None:
    """The default provider is empty, so the JSON form leaves it out."""
    assert "provider" not in case_to_json(case_from_json(minimal()))["payment"]


def test_a_due_date_begins_at_midnight_on_the_merchants_calendar() -> None:
    """A date-only due date is due from local midnight in the Case's time zone, in UTC."""
    data = changed({"time_zone": "America/New_York", "account.invoices.1.due_at": "2025-03-10",
                    "order.next_billing_at": "2025-01-10"})
    read = case_from_json(data)
    assert read.account.invoices[1].due_at == datetime(2025, 3, 10, 4, 0, tzinfo=UTC)  # EDT
    assert read.order is not None
    assert read.order.next_billing_at == datetime(2025, 1, 10, 5, 0, tzinfo=UTC)  # EST
    assert read.time_zone == "America/New_York"
    utc = case_from_json(changed({"account.invoices.1.due_at": "2025-03-10"}))
    assert utc.account.invoices[1].due_at == datetime(2025, 3, 10, tzinfo=UTC)


def test_date_times_are_read_as_the_instant_they_name() -> None:
    """Every date-time field is read in UTC, whatever offset it was written with."""
    at = "2025-03-02T12:30:00+02:00"
    want = datetime(2025, 3, 2, 10, 30, tzinfo=UTC)
    read = case_from_json(changed({"request.received_at": at, "order.ordered_at": at,
                                   "order.service_date": at, "payment.received_at": at,
                                   "uptime.incident_at": at, "account.invoices.1.due_at": at,
                                   "account.invoices.1.notified_at": at}))
    assert read.order is not None and read.payment is not None and read.uptime is not None
    assert {read.request.received_at, read.order.ordered_at, read.order.service_date,
            read.payment.received_at, read.uptime.incident_at, read.account.invoices[1].due_at,
            read.account.invoices[1].notified_at} == {want}


def test_the_json_form_is_in_utc_whatever_the_hosts_time_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Date-times are written with a ``Z``, not in the local time of the machine writing them."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        out = case_to_json(case_from_json(base()))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert out["request"]["received_at"] == iso(T0) == "2025-03-01T09:00:00Z"
    assert out["payment"]["received_at"] == "2025-03-02T10:00:00Z"


def test_date_times_are_read_in_utc_whatever_the_hosts_time_zone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A date-time written at another offset is held in UTC itself (``tzinfo is UTC``, which
    the policy's calendar arithmetic relies on), not in the local zone of the machine reading
    it."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        read = case_from_json(changed({"request.received_at": "2025-03-02T12:30:00+02:00"}))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert read.request.received_at.tzinfo is UTC
    assert read.request.received_at == datetime(2025, 3, 2, 10, 30, tzinfo=UTC)
