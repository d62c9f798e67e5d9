"""Seed 003 §1.12: the credit's arithmetic and the words it is explained in, pinned where the
band tests do not reach: days below the lowest band, the rounding in the customer's favour, the
cap, and the detail each reason gives."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from importlib import resources
from typing import Any

import pytest

from policy import Outcome, Pack, case_from_json, evaluate
from policy.money import Money
from policy.pack import parse_pack

from .builders import T0, decide, money, pack
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


def _reasons(d: Any) -> list[tuple[str, bool, str]]:
    return [(r.clause, r.holds, r.detail) for r in d.reasons]


def test_a_valid_claim_gives_a_service_credit_with_every_check_explained():
    """Web hosting at 99.0%, claimed an hour after the incident: 80% of 100.00 as service credit
    with no cash value (1.12), each clause checked in order with the facts it looked at."""
    d = _credit("99.0", "web_hosting")
    assert d.outcome is Outcome.SERVICE_CREDIT
    assert (d.at_stake, d.credit, d.retained) == (Money(10000, "USD"), Money(8000, "USD"),
                                                  Money(2000, "USD"))
    assert d.flags == ("no_cash_value",)
    assert _reasons(d) == [
        ("003 §1.13", True, "claimed 0d 01:00:00 after the incident (at most 72h)"),
        ("003 §1.13", True, "all required details given"),
        ("003 §1.12d", True, "cause: other"),
        ("003 §1.11b", True, "figure from merchant_monitoring"),
        ("003 §1.11", True, "measured 99.0% against the 99.9% guarantee"),
        ("003 §1.12a", True, "measured 99.0%: band from 99.0% gives 80%"),
        ("003 §1.12", True, "applied as account credit; no cash value"),
    ]


def test_an_invalid_claim_is_denied_naming_every_clause_it_fails():
    """A license (excluded, 1.12c), claimed after 80 hours (1.13) without a username, for a
    denial-of-service outage (1.12d) measured by a third party (1.11b): denied, nothing
    credited, the month at stake; each failure with its fact."""
    data = claim("99.0", "license", after=80 * HOUR, ident={"username": None},
                 cause="denial_of_service", source="third_party")
    d = decide("theopenhost", data, now=T0 + 80 * HOUR)
    assert d.outcome is Outcome.DENY
    assert (d.at_stake, d.credit, d.flags) == (Money(10000, "USD"), Money(0, "USD"), ())
    assert _reasons(d) == [
        ("003 §1.12c", False, "license is excluded from uptime credit"),
        ("003 §1.13", False, "claimed 3d 08:00:00 after the incident (at most 72h)"),
        ("003 §1.13", False, "missing: username"),
        ("003 §1.12d", False, "cause: denial_of_service"),
        ("003 §1.11b", False, "figure from third_party; the merchant's own monitoring decides"),
        ("003 §1.11", True, "measured 99.0% against the 99.9% guarantee"),
    ]


def test_a_service_without_a_guarantee_is_denied_even_when_the_claim_is_otherwise_valid():
    """A cloud server carries no uptime guarantee (1.11): denied on that alone."""
    d = _credit("99.0", "cloud_server")
    assert d.outcome is Outcome.DENY and d.credit == Money(0, "USD")
    assert _reasons(d)[0] == ("003 §1.11", False, "cloud_server carries no uptime guarantee")
    assert [r for r in _reasons(d)[1:] if not r[1]] == []


def test_a_met_guarantee_for_a_service_without_one_is_still_a_denial():
    """99.95% for a cloud server: the missing guarantee decides (deny), not the met figure."""
    d = _credit("99.95", "cloud_server")
    assert d.outcome is Outcome.DENY
    assert _reasons(d)[-1] == ("003 §1.11", False, "measured 99.95% against the 99.9% guarantee"
                               "; the guarantee was met, so no credit is owed")


def test_a_met_guarantee_owes_nothing_and_says_so():
    """99.95% against 99.9%: no action, the month at stake, nothing credited or flagged."""
    d = _credit("99.95", "web_hosting")
    assert d.outcome is Outcome.NO_ACTION
    assert (d.at_stake, d.credit, d.retained, d.flags) == (
        Money(10000, "USD"), Money(0, "USD"), Money(10000, "USD"), ())
    assert _reasons(d)[-1] == ("003 §1.11", False, "measured 99.95% against the 99.9% guarantee"
                               "; the guarantee was met, so no credit is owed")


def test_a_third_party_figure_goes_to_review_without_a_credit():
    """1.11b: a figure from the customer's own tool is reviewed, not credited or denied."""
    d = decide("theopenhost", claim("99.0", source="third_party"), now=T0 + HOUR)
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert (d.at_stake, d.credit, d.flags) == (Money(10000, "USD"), Money(0, "USD"), ())
    assert [r for r in _reasons(d) if not r[1]] == [
        ("003 §1.11b", False, "figure from third_party; the merchant's own monitoring decides")]


def test_a_claim_at_exactly_72_hours_is_in_time_and_says_so():
    """1.13: 72 hours to the second is within the window; the detail names the delay."""
    d = decide("theopenhost", claim("99.0", after=72 * HOUR), now=T0 + 72 * HOUR)
    assert d.outcome is Outcome.SERVICE_CREDIT
    assert _reasons(d)[0] == ("003 §1.13", True,
                              "claimed 3d 00:00:00 after the incident (at most 72h)")


def test_the_monthly_equivalent_of_a_yearly_payment_rounds_in_the_customers_favour():
    """100.01 a year is 8.334 a month: 8.34 at stake (credit_rounding ROUND_UP); 90% of it at
    98% is 7.506, credited as 7.51."""
    data = claim("98")
    data["order"]["term_months"] = 12
    data["order"]["amount"] = money(10001)
    d = decide("theopenhost", data, now=T0 + HOUR)
    assert (d.at_stake, d.credit) == (Money(834, "USD"), Money(751, "USD"))
    assert ("003 §1.12a", True, "measured 98%: band from 98% gives 90%") in _reasons(d)


def test_below_the_lowest_band_the_daily_part_is_rounded_up_with_the_rest():
    """VPS at 94.5% on 100.01: 40% is 40.004, one further day 90% of 3.3337 is 3.0003; the
    sum 43.0073 is credited as 43.01."""
    d = _credit("94.5", amount=10001)
    assert d.credit == Money(4301, "USD")


def _variant(change: Callable[[dict[str, Any]], Any]) -> Pack:
    data = tomllib.loads(resources.files("policy").joinpath("packs/theopenhost.toml").read_text())
    change(data)
    return parse_pack("theopenhost", data)


def _vps_schedule(data: dict[str, Any]) -> dict[str, Any]:
    return next(s for s in data["uptime"]["schedule"] if "vps" in s["categories"])


def test_further_days_can_be_counted_whole_only():
    """day_rounding = "floor": at 94.5% the 0.15 day below 95% counts as none (40% only, the
    detail says 0 further days); at 91.6% the 1.02 days count as one."""
    pack = _variant(lambda d: _vps_schedule(d).update(day_rounding="floor"))
    d = evaluate(pack, case_from_json(claim("94.5", "vps")), T0 + HOUR)
    assert d.credit == Money(4000, "USD")
    assert _details(d, "003 §1.12b") == [
        "measured 94.5%: band from 95% gives 40%, plus 90% of the daily equivalent for 0 "
        "further day(s) of downtime below 95%"]
    d = evaluate(pack, case_from_json(claim("91.6", "vps")), T0 + HOUR)
    assert d.credit == Money(4300, "USD")


def test_a_cap_below_the_monthly_payment_is_rounded_down_and_applied():
    """cap_percent 50: at 0% on 100.03 the credit stops at half the month, 50.015 rounded down
    to 50.01, with the cap's note; below the cap the credit is untouched."""
    pack = _variant(lambda d: d["uptime"].update(cap_percent="50"))
    d = evaluate(pack, case_from_json(claim("0", "vps", amount=10003)), T0 + HOUR)
    assert d.credit == Money(5001, "USD")
    assert _details(d, "003 §1.12c") == ["credit capped at 50% of the monthly payment"]
    d = evaluate(pack, case_from_json(claim("97", "vps", amount=10003)), T0 + HOUR)
    assert d.credit == Money(4002, "USD")
    assert _details(d, "003 §1.12c") == []


def test_a_pack_without_optional_uptime_terms_checks_only_the_window_and_the_guarantee():
    """No excluded products, causes or sources, no identity rule, no credit note: a license
    simply has no guarantee, and a valid VPS claim is credited with two reasons and the band."""
    def strip(data: dict[str, Any]) -> None:
        for key in ("excluded", "excluded_causes", "accepted_sources", "identity",
                    "credit_note_clause"):
            del data["uptime"][key]
    pack = _variant(strip)
    data = claim("99.0", "license", cause="denial_of_service", source="third_party",
                 ident={"username": None})
    d = evaluate(pack, case_from_json(data), T0 + HOUR)
    assert d.outcome is Outcome.DENY
    assert _reasons(d) == [
        ("003 §1.11", False, "license carries no uptime guarantee"),
        ("003 §1.13", True, "claimed 0d 01:00:00 after the incident (at most 72h)"),
        ("003 §1.11", True, "measured 99.0% against the 99.9% guarantee")]
    d = evaluate(pack, case_from_json(claim("99.0", "vps")), T0 + HOUR)
    assert (d.outcome, d.credit, d.flags) == (
        Outcome.SERVICE_CREDIT, Money(2000, "USD"), ("no_cash_value",))
    assert [r[0] for r in _reasons(d)] == ["003 §1.13", "003 §1.11", "003 §1.12b"]


def test_a_cap_above_the_monthly_payment_still_credits_at_most_the_month():
    """cap_percent 150: at 0% the VPS credit would be 127.00, under the cap, yet no more than
    the 100.00 monthly payment is credited."""
    pack = _variant(lambda d: d["uptime"].update(cap_percent="150"))
    d = evaluate(pack, case_from_json(claim("0", "vps")), T0 + HOUR)
    assert (d.outcome, d.credit, d.retained) == (
        Outcome.SERVICE_CREDIT, Money(10000, "USD"), Money(0, "USD"))


@pytest.mark.parametrize(("missing", "fact"), [("uptime", "uptime"), ("order", "order")])
def test_a_case_built_without_the_uptime_figures_or_the_order_goes_to_review(missing: str,
                                                                              fact: str):
    """A Case made in code without its uptime figures or order (the JSON schema requires both)
    is reviewed, naming the missing fact and the guarantee clause (1.11)."""
    base = case_from_json(claim("99.0"))
    c = (dataclasses.replace(base, uptime=None) if missing == "uptime"
         else dataclasses.replace(base, order=None))
    d = evaluate(pack("theopenhost"), c, T0 + HOUR)
    assert (d.outcome, d.at_stake, d.credit.amount) == (Outcome.NEEDS_REVIEW, None, 0)
    clause = pack("theopenhost").clauses["1.11"]
    assert [(r.clause, r.text, r.holds, r.detail) for r in d.reasons] == [
        ("003 §1.11", clause.text, False,
         f"the case does not give {fact}, which this clause needs")]


def test_an_identity_rule_requiring_a_reason_reads_the_claims_reason():
    """With reason_required on the uptime identity rule, a claim that gives its reason passes
    1.13 and one whose reason is blank is denied naming it."""
    pack = _variant(lambda d: d["uptime"]["identity"].update(reason_required=True))
    d = evaluate(pack, case_from_json(claim("99.0")), T0 + HOUR)
    assert d.outcome is Outcome.SERVICE_CREDIT
    assert ("003 §1.13", True, "all required details given") in _reasons(d)
    data = claim("99.0")
    data["request"]["reason"] = " "
    d = evaluate(pack, case_from_json(data), T0 + HOUR)
    assert d.outcome is Outcome.DENY
    assert ("003 §1.13", False, "missing: reason") in _reasons(d)
