"""Guarantee outcomes the base tests leave open: an order type not covered, a partial proposal."""

from __future__ import annotations

from datetime import timedelta

from policy import Outcome, decision_to_json
from policy.money import Money

from .builders import GIB, T0, case, decide, money, order


def test_a_renewal_claim_under_a_new_orders_guarantee_is_denied_naming_both_types():
    """theopenhost's guarantee covers new orders: a renewal is denied, the whole order at stake."""
    d = decide("theopenhost", case("refund", T0, order=order(type="renewal")))
    assert d.outcome is Outcome.DENY
    assert d.at_stake == Money(12000, "USD") and d.refund == Money(0, "USD")
    assert [(r.clause, r.holds, r.detail) for r in d.reasons] == [
        ("003 §1.1f", False, "the guarantee covers new orders; this is a renewal order")]


def test_a_partial_proposal_charges_whole_minor_units_and_says_how():
    """Over 10GB on a 12-month order: charge one month's 4.99 USD, in integers, with the sum
    shown."""
    data = case("refund", T0 + timedelta(days=2),
                order=order(product_category="vpn", amount=money(5999), term_months=12),
                usage={"bandwidth_bytes": 11 * GIB, "sessions": 3})
    d = decide("cloudbehind", data)
    assert d.outcome is Outcome.NEEDS_REVIEW and d.at_stake == Money(5999, "USD")
    out = decision_to_json(d)
    assert out["line_items"] == [{"kind": "usage_charge", "label": "1 month(s) of usage",
                                  "amount": {"amount": 499, "currency": "USD"},
                                  "clause": "002 §new.partial"}]
    assert type(out["line_items"][0]["amount"]["amount"]) is int
    proposed = out["amounts"]["proposed_refund"]["amount"]
    assert type(proposed) is int and proposed == 5500
    assert ("002 §new.partial", "partial refund at the merchant's discretion: proposed charge "
            "1 month(s) of 12 at 4.99 USD") in [(r.clause, r.detail) for r in d.reasons]
