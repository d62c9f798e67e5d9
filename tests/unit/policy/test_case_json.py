"""The Case boundary: schema validation with errors that name the field, and the round trip."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from policy import CaseError, case_from_json, case_to_json

from .builders import T0, case, money, order


def valid() -> dict[str, Any]:
    return case("refund", T0, order=order(addons=["ssl_certificate"]),
                usage={"bandwidth_bytes": 5, "sessions": 1})


def broken(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(valid())
    *parents, last = path.split(".")
    target = data
    for p in parents:
        target = target[p]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return data


@pytest.mark.parametrize(("path", "value", "field"), [
    ("order.amount", KeyError, "order.amount"),
    ("order.amount.amount", -1, "order.amount.amount"),
    ("order.amount.amount", 12.5, "order.amount.amount"),
    ("order.amount.amount", 12.0, "order.amount.amount"),
    ("order.amount.currency", "usd", "order.amount.currency"),
    ("order.ordered_at", "2025-03-01T09:00:00", "order.ordered_at"),
    ("order.ordered_at", "yesterday", "order.ordered_at"),
    ("order.type", "upgrade", "order.type"),
    ("order.term_months", 0, "order.term_months"),
    ("order.colour", "blue", "order.colour"),
    ("request.kind", "chargeback", "request.kind"),
    ("request.received_at", KeyError, "request.received_at"),
    ("usage.sessions", -1, "usage.sessions"),
    ("order", KeyError, "order"),
], ids=lambda v: str(v))
def test_a_bad_case_raises_an_error_naming_the_field(path: str, value: Any, field: str) -> None:
    """Every schema violation names the dotted path of the offending field."""
    with pytest.raises(CaseError) as info:
        case_from_json(broken(path, value))
    assert info.value.field == field
    assert info.value.message


def test_an_overpayment_cannot_exceed_the_payment() -> None:
    """Cross-field checks name the field too."""
    data = case("overpayment", T0, payment={"amount": money(100),
                                            "received_at": "2025-01-01T00:00:00Z",
                                            "overpaid_amount": money(200)})
    with pytest.raises(CaseError) as info:
        case_from_json(data)
    assert info.value.field == "payment.overpaid_amount.amount"


def test_an_overdue_invoice_request_must_name_the_invoice() -> None:
    """Conditional requirements per request kind are enforced by the schema."""
    with pytest.raises(CaseError) as info:
        case_from_json(case("overdue_invoice", T0))
    assert info.value.field == "request.invoice_number"


def test_a_case_survives_the_round_trip_through_json() -> None:
    """case_to_json then case_from_json gives the same Case."""
    first = case_from_json(valid())
    assert case_from_json(case_to_json(first)) == first


def test_offsets_are_normalised_to_utc() -> None:
    """A +02:00 timestamp becomes the same instant in UTC."""
    data = valid()
    data["request"]["received_at"] = "2025-03-01T11:00:00+02:00"
    assert case_from_json(data).request.received_at == T0


def test_an_error_about_the_whole_case_is_said_to_be_the_cases():
    """With no field to name (the Case itself is wrong), the message names "(case)"."""
    with pytest.raises(CaseError) as raised:
        case_from_json([])  # type: ignore[arg-type]
    assert str(raised.value) == "(case): a Case must be a JSON object, got list"
    assert raised.value.field == ""
