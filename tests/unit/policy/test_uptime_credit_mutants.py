"""Seed 003 §1.12: the credit's arithmetic and the words it is explained in, pinned where the
band tests do not reach: days below the lowest band, the rounding in the customer's favour, the
cap, and the detail each reason gives."""

from __future__ import annotations

from typing import Any

from .builders import T0, decide
from .test_theopenhost_uptime import HOUR, claim


def _credit(measured: str, category: str = "vps", amount: int = 10000) -> Any:
    return decide("theopenhost", claim(measured, category, amount=amount), now=T0 + HOUR)


def _details(d: Any, clause: str) -> list[str]:
    return [r.detail for r in d.reasons if r.clause == clause]


def test_below_the_lowest_band_each_further_day_adds_90_percent_of_a_days_fee():
    """VPS at 94.5%: 40% of 100.00, plus 90% of 100.00/30 for the 0.15 day below 95% rounded
    up to a whole day (1.12b): 43.00; the detail names the band and the further day."""
    d = _credit("94.5")
    assert d.credit.amount == 4000 + 300
    (detail,) = _details(d, "003 §1.12b")
    assert detail == ("measured 94.5%: band from 95% gives 40%, plus 90% of the daily "
                      "equivalent for 1 further day(s) of downtime below 95%")


def test_at_the_lowest_band_no_further_day_is_counted():
    """Exactly 95%: the band's 40%, and the detail says nothing of further days."""
    d = _credit("95")
    assert d.credit.amount == 4000
    assert _details(d, "003 §1.12b") == ["measured 95%: band from 95% gives 40%"]


def test_a_fraction_of_a_cent_is_rounded_in_the_customers_favour():
    """70% of 100.09 is 70.063: the customer gets 70.07 (credit_rounding ROUND_UP), not the
    70.06 that rounding to the nearest would give."""
    assert _credit("99.89", "web_hosting", amount=10009).credit.amount == 7007


def test_a_credit_beyond_the_monthly_payment_is_capped_and_says_so():
    """VPS at 0%: 40% plus 29 further days would be 127.00; capped at 100% of the month (1.12c),
    with the cap's clause cited."""
    d = _credit("0")
    assert d.credit.amount == 10000
    assert _details(d, "003 §1.12c") == ["credit capped at 100% of the monthly payment"]


def test_a_credit_of_exactly_the_monthly_payment_is_not_reported_as_capped():
    """VPS at 30%: 40% plus 20 further days is exactly 100.00: nothing was cut, no cap note."""
    d = _credit("30")
    assert d.credit.amount == 10000
    assert _details(d, "003 §1.12c") == []
