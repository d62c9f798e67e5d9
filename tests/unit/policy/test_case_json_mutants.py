"""The round trip of the Case parts the base round-trip test leaves out: payment, uptime, invoices,
the optional order and request fields, the credit balance."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from policy import case_from_json, case_to_json

from .builders import T0, case, invoices, money, order


def full_case() -> dict[str, Any]:
    data = case("refund", T0, request_extra={"invoice_number": "INV-2"},
                order=order(next_billing_at="2025-04-01T09:00:00Z", service_state="initiated",
                            service_date="2025-03-05T12:00:00Z"),
                usage={"bandwidth_bytes": 5, "sessions": 1},
                payment={"amount": money(5000), "received_at": "2025-03-02T10:00:00Z",
                         "overpaid_amount": money(1200), "provider": "paypal",
                         "via_subscription": True, "refundable": money(3000),
                         "dispute": "open"},
                uptime={"measured_percent": "97.5", "incident_at": "2025-03-03T00:00:00Z",
                        "cause": "hardware", "source": "third_party"})
    data["account"]["invoices"] = invoices(("INV-1", T0, True),
                                           ("INV-2", T0 + timedelta(30), False))
    del data["account"]["invoices"][1]["notified_at"]
    data["account"]["credit_balance"] = money(700)
    return data


def test_a_case_with_payment_uptime_and_invoices_survives_the_round_trip():
    """case_to_json keeps the payment, uptime and invoices that case_from_json read."""
    first = case_from_json(full_case())
    again = case_from_json(case_to_json(first))
    assert again == first
    assert again.payment == first.payment and again.uptime == first.uptime
    assert again.account.invoices == first.account.invoices


def test_the_json_form_of_payment_uptime_and_invoices_is_the_input_form():
    """The written payment, uptime, invoices and optional fields are those of the input."""
    data = full_case()
    out = case_to_json(case_from_json(data))
    assert out["request"]["invoice_number"] == "INV-2"
    assert out["account"]["credit_balance"] == money(700)
    assert {k: out["order"][k] for k in ("next_billing_at", "service_state", "service_date")} == {
        k: data["order"][k] for k in ("next_billing_at", "service_state", "service_date")}
    assert out["payment"] == data["payment"]
    assert out["uptime"] == data["uptime"]
    assert out["account"]["invoices"] == data["account"]["invoices"]
    assert "notified_at" not in out["account"]["invoices"][1]


def test_a_payment_without_a_provider_is_written_without_one():
    """A payment whose provider is not given round-trips with no provider field."""
    data = full_case()
    del data["payment"]["provider"]
    first = case_from_json(data)
    out = case_to_json(first)
    assert "provider" not in out["payment"]
    assert case_from_json(out) == first
