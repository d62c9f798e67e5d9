"""A late fee: rounded the way the pack says (theopenhost: down), itemised, explained, with its
notes."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from importlib import resources

from policy import LineItem, Outcome, case_from_json, evaluate
from policy.money import Money
from policy.pack import parse_pack

from .builders import T0, case, decide, iso, money


def _late(amount: int):
    invoice = {"number": "INV-9", "amount": money(amount), "due_at": iso(T0), "paid": False,
               "notified_at": iso(T0 - timedelta(days=10))}
    data = case("overdue_invoice", T0, request_extra={"invoice_number": "INV-9"})
    data["account"] = {"invoices": [invoice]}
    return decide("theopenhost", data, now=T0 + timedelta(days=2))


def test_a_late_fee_share_with_a_large_fraction_is_rounded_down():
    """35% of $14.34 is 501.9 cents: theopenhost's fee_rounding (ROUND_DOWN) charges 501."""
    d = _late(1434)
    assert d.outcome is Outcome.LATE_FEE
    assert d.fee.amount == 501


def test_a_late_fee_is_itemised_and_its_arithmetic_shown():
    """The fee is one line item citing the floor clause, whose reason shows the arithmetic."""
    d = _late(1434)
    assert d.effective_at == T0 + timedelta(hours=24)  # overdue from the end of the grace period
    assert d.flags == ("support_withheld",)  # not in collection: no collection note or flag
    assert "003 §1.3a" not in [r.clause for r in d.reasons]
    assert d.line_items == (LineItem("late_fee", "late fee on invoice INV-9", Money(501, "USD"),
                                     "003 §1.5"),)
    assert ("003 §1.5", True, "35% of 14.34 USD is 5.01 USD; minimum 5.00 USD; late fee 5.01 USD"
            ) in [(r.clause, r.holds, r.detail) for r in d.reasons]


def test_late_fee_notes_say_support_is_withheld_and_what_collection_may_add():
    """The support and collection notes are reasons: withheld support, the cap or its absence."""
    data = tomllib.loads(resources.files("policy").joinpath("packs/theopenhost.toml").read_text())
    data["late_fee"]["floor"]["EUR"] = 500  # a floor in EUR, but the collection cap only in USD
    pack = parse_pack("theopenhost", data)

    def notes(currency: str) -> list[tuple[str, bool, str]]:
        invoice = {"number": "INV-9", "amount": money(10000, currency), "due_at": iso(T0),
                   "paid": False, "notified_at": iso(T0 - timedelta(days=10))}
        case_data = case("overdue_invoice", T0, request_extra={"invoice_number": "INV-9"})
        case_data["account"] = {"invoices": [invoice], "in_collection": True}
        d = evaluate(pack, case_from_json(case_data), T0 + timedelta(days=2))
        assert d.outcome is Outcome.LATE_FEE
        assert d.flags == ("support_withheld", "debt_collection")
        return [(r.clause, r.holds, r.detail) for r in d.reasons
                if r.clause in ("003 §1.4", "003 §1.3a")]

    tail = " may be applied at the merchant's discretion (not charged here)"
    assert notes("USD") == [
        ("003 §1.4", True, "no support while the bill is overdue"),
        ("003 §1.3a", True, "passed to debt collection: a fee of up to 150.00 USD" + tail)]
    assert notes("EUR")[1] == (
        "003 §1.3a", True,
        "passed to debt collection: a fee of up to (no EUR cap configured)" + tail)
