"""Guarantee outcomes the base tests leave open: an order type not covered, a partial proposal."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest

from policy import (
    Decision,
    LineItem,
    Outcome,
    Pack,
    PackError,
    case_from_json,
    decision_to_json,
    evaluate,
)
from policy.money import Money
from policy.pack import parse_pack

from .builders import GIB, NOW, T0, case, decide, money, order, pack


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


DAY = timedelta(days=1)
USAGE = {"bandwidth_bytes": 1, "sessions": 1}
RENEWAL = {"type": "renewal", "product_category": "vpn", "auto_renew": True, "term_months": 12}


def _reasons(d: Decision) -> list[tuple[str, bool, str]]:
    return [(r.clause, r.holds, r.detail) for r in d.reasons]


def _variant(name: str, change: Callable[[dict[str, Any]], Any]) -> Pack:
    data = tomllib.loads(resources.files("policy").joinpath(f"packs/{name}.toml").read_text())
    change(data)
    return parse_pack(name, data)


def test_a_clean_sign_up_claim_is_refunded_in_full_with_each_clause_checked():
    """theopenhost, web hosting, day 2: covered (1.1), in the 16 days (1.1f), no violations
    (1.1d) and no earlier refunds (1.1c): the whole 120.00 back, nothing kept."""
    d = decide("theopenhost", case("refund", T0 + 2 * DAY, order=order()))
    assert (d.outcome, d.at_stake, d.refund, d.retained, d.line_items, d.notice_by) == (
        Outcome.FULL_REFUND, Money(12000, "USD"), Money(12000, "USD"), Money(0, "USD"), (),
        None)
    assert _reasons(d) == [
        ("003 §1.1", True, "web_hosting is covered"),
        ("003 §1.1f", True, "claimed on calendar day 2 after the order date (day 16 excluded; "
         "2025-03-01 to 2025-03-03, UTC dates)"),
        ("003 §1.1d", True, "0 recorded violations (allowed 0)"),
        ("003 §1.1c", True, "0 earlier guarantee refunds (allowed 0)")]


def test_add_ons_are_deducted_itemised_and_listed_in_one_note():
    """1.1a: an SSL certificate (10.00) and a domain reseller (1.00) come off the 120.00; an
    add-on the table does not list is ignored."""
    d = decide("theopenhost", case("refund", T0 + 2 * DAY, order=order(
        addons=["ssl_certificate", "unknown_addon", "domain_reseller"])))
    assert (d.outcome, d.refund, d.retained) == (
        Outcome.PARTIAL_REFUND, Money(10900, "USD"), Money(1100, "USD"))
    assert d.line_items == (
        LineItem("deduction", "SSL Certificate", Money(1000, "USD"), "003 §1.1a SSL Certificate"),
        LineItem("deduction", "Domain Reseller", Money(100, "USD"), "003 §1.1a Domain Reseller"))
    assert _reasons(d)[-1] == ("003 §1.1a", True, "requested or used add-ons are chargeable: "
                               "SSL Certificate 10.00 USD, Domain Reseller 1.00 USD")


def test_deductions_above_the_payment_leave_a_zero_partial_refund():
    """5.00 paid, a 10.00 SSL certificate: nothing back, all 5.00 kept, still itemised."""
    d = decide("theopenhost", case("refund", T0 + 2 * DAY,
                                   order=order(amount=money(500), addons=["ssl_certificate"])))
    assert (d.outcome, d.refund, d.retained, len(d.line_items)) == (
        Outcome.PARTIAL_REFUND, Money(0, "USD"), Money(500, "USD"), 1)


def test_a_deduction_with_no_amount_in_the_currency_goes_to_review_naming_it():
    """1.1a states its amounts in USD: a EUR order with an SSL certificate waits for a person,
    the whole order at stake, nothing refunded or itemised."""
    d = decide("theopenhost", case("refund", T0 + 2 * DAY, order=order(
        amount=money(12000, "EUR"), addons=["ssl_certificate"])))
    assert (d.outcome, d.at_stake, d.refund, d.line_items) == (
        Outcome.NEEDS_REVIEW, Money(12000, "EUR"), Money(0, "EUR"), ())
    assert _reasons(d)[-1] == ("003 §1.1a SSL Certificate", False,
                               "no EUR amount is configured for the SSL Certificate deduction "
                               "(stated in USD); not converting")


def test_an_excluded_product_is_denied_naming_it():
    """1.1b: a VPS has no money-back guarantee, whatever else holds."""
    d = decide("theopenhost", case("refund", T0 + 2 * DAY, order=order(product_category="vps")))
    assert (d.outcome, d.refund, d.retained) == (
        Outcome.DENY, Money(0, "USD"), Money(12000, "USD"))
    assert _reasons(d)[0] == ("003 §1.1b", False, "vps is excluded from the guarantee")
    assert [r for r in _reasons(d)[1:] if not r[1]] == []


def test_an_unknown_product_goes_to_review_asking_for_a_classification():
    """1.1: a category the pack does not know is classified by a person."""
    d = decide("theopenhost", case("refund", T0 + 2 * DAY,
                                   order=order(product_category="widget")))
    assert (d.outcome, d.refund) == (Outcome.NEEDS_REVIEW, Money(0, "USD"))
    assert _reasons(d)[0] == ("003 §1.1", False, "widget is not a category this pack knows; "
                              "a person must classify it")


def test_a_late_claim_notes_that_unused_periods_are_not_refunded():
    """1.1e: outside the 16 days, unused prepaid periods are not refunded either."""
    d = decide("theopenhost", case("refund", T0 + 20 * DAY, order=order()))
    assert d.outcome is Outcome.DENY
    assert _reasons(d)[1:3] == [
        ("003 §1.1f", False, "claimed on calendar day 20 after the order date (day 16 excluded; "
         "2025-03-01 to 2025-03-21, UTC dates)"),
        ("003 §1.1e", False, "outside the guarantee, unused prepaid periods are not refunded")]


def test_violations_and_earlier_refunds_are_counted_against_their_limits():
    """1.1d/1.1c: one violation and one earlier refund, none allowed: denied, both named."""
    data = case("refund", T0 + 2 * DAY, order=order())
    data["account"] = {"violations": 1, "prior_guarantee_refunds": 1}
    d = decide("theopenhost", data)
    assert d.outcome is Outcome.DENY
    assert _reasons(d)[2:] == [("003 §1.1d", False, "1 recorded violations (allowed 0)"),
                               ("003 §1.1c", False, "1 earlier guarantee refunds (allowed 0)")]


def test_a_suspended_account_is_denied_saying_so():
    """cloudbehind new.2: an account suspended for breach gets no refund."""
    data = case("refund", T0 + 2 * DAY, order=order(product_category="vpn"), usage=USAGE)
    data["account"] = {"suspended_for_breach": True}
    d = decide("cloudbehind", data)
    assert d.outcome is Outcome.DENY
    assert _reasons(d)[1] == ("002 §new.2", False, "account suspended for breach")


def test_a_clean_vpn_claim_shows_its_usage_against_the_limits():
    """new.2-new.5 hold and say so: not suspended, usage and sessions within their limits."""
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=order(product_category="vpn"),
                                   usage={"bandwidth_bytes": 10 * GIB - 1, "sessions": 100}))
    assert d.outcome is Outcome.FULL_REFUND
    assert _reasons(d)[1:] == [
        ("002 §new.2", True, "not suspended"),
        ("002 §new.6", True, "0 earlier guarantee refunds (allowed 0)"),
        ("002 §new.3", True, "all required details given"),
        ("002 §new.4", True, "10737418239 bytes used (must be below 10737418240)"),
        ("002 §new.5", True, "100 sessions (at most 100)")]


def test_usage_over_both_limits_on_a_one_month_order_is_denied_naming_both():
    """new.4/new.5: 11 GiB and 101 sessions on a one-month order: no partial refund."""
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=order(product_category="vpn"),
                                   usage={"bandwidth_bytes": 11 * GIB, "sessions": 101}))
    assert (d.outcome, d.proposed_refund, d.line_items) == (Outcome.DENY, None, ())
    assert _reasons(d)[-2:] == [
        ("002 §new.4", False, "11811160064 bytes used (must be below 10737418240)"),
        ("002 §new.5", False, "101 sessions (at most 100)")]


def test_a_claim_without_usage_figures_goes_to_review_under_the_bandwidth_clause():
    """new.4 cannot be checked without usage figures: a person looks."""
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=order(product_category="vpn")))
    assert (d.outcome, d.refund) == (Outcome.NEEDS_REVIEW, Money(0, "USD"))
    assert _reasons(d)[-1] == ("002 §new.4", False, "the case gives no usage figures")


def test_a_renewal_claim_without_usage_figures_goes_to_review_under_its_usage_clause():
    """renewal.4 (unused since renewal) is the renewal's only usage term: it is the one cited."""
    o = order(**RENEWAL)
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=o))
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert ("002 §renewal.4", False, "the case gives no usage figures") in _reasons(d)


def test_a_renewal_under_auto_renewal_is_refunded_with_the_reminder_date_in_local_time():
    """billing.4/billing.2: renewed 1 March 00:30 in Paris (28 February in UTC), claimed on day
    2, unused: refunded in full; the reminder was due five Paris calendar days before, on 24
    February (23:30 UTC on the 23rd), which is the decision's notice_by."""
    o = order(**RENEWAL) | {"ordered_at": "2025-02-28T23:30:00Z"}
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=o,
                                   usage=USAGE | {"used_since_renewal": False},
                                   time_zone="Europe/Paris"))
    assert (d.outcome, d.refund) == (Outcome.FULL_REFUND, Money(12000, "USD"))
    assert d.notice_by == datetime(2025, 2, 23, 23, 30, tzinfo=UTC)
    assert _reasons(d) == [
        ("002 §renewal.5", True, "paid via stripe/card"),
        ("002 §billing.2", True, "term is 12 months (offered: [1, 6, 12])"),
        ("002 §renewal.1", True, "claimed on calendar day 2 after the renewal date (day 14 "
         "included; 2025-03-01 to 2025-03-03, Europe/Paris dates)"),
        ("002 §renewal.2", True, "not suspended"),
        ("002 §renewal.3", True, "all required details given"),
        ("002 §renewal.4", True, "not used since renewal"),
        ("002 §billing.4", True, "automatic renewal: the renewal criteria apply"),
        ("002 §billing.2", True, "the renewal reminder was due by 2025-02-24")]


def test_a_denied_or_reviewed_renewal_still_carries_the_reminder_date():
    """The reminder date is part of the decision whatever the outcome."""
    o = order(**RENEWAL) | {"payment_provider": "onebip"}
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=o, usage=USAGE))
    assert (d.outcome, d.notice_by) == (Outcome.DENY, T0 - 5 * DAY)
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=order(**RENEWAL)))
    assert (d.outcome, d.notice_by) == (Outcome.NEEDS_REVIEW, T0 - 5 * DAY)


def test_a_renewal_without_auto_renewal_or_a_new_order_with_it_gets_no_renewal_notes():
    """The auto-renewal notes apply only to a renewal that renewed automatically."""
    manual = order(**RENEWAL) | {"auto_renew": False}
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=manual, usage=USAGE))
    assert (d.outcome, d.notice_by) == (Outcome.FULL_REFUND, None)
    assert [r[0] for r in _reasons(d)][-1] == "002 §renewal.4"
    new = order(product_category="vpn", auto_renew=True)
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=new, usage=USAGE))
    assert (d.outcome, d.notice_by) == (Outcome.FULL_REFUND, None)
    assert "002 §billing.4" not in [r[0] for r in _reasons(d)]


def test_a_renewal_used_paid_via_onebip_on_an_unoffered_term_fails_each_clause():
    """renewal.5 (OneBip), billing.2 (a 3-month term, reviewed) and renewal.4 (used): denied."""
    o = order(**RENEWAL) | {"term_months": 3, "payment_provider": "onebip", "auto_renew": False}
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=o,
                                   usage=USAGE | {"used_since_renewal": True}))
    assert d.outcome is Outcome.DENY
    assert [r for r in _reasons(d) if not r[1]] == [
        ("002 §renewal.5", False, "paid via onebip/card"),
        ("002 §billing.2", False, "term is 3 months (offered: [1, 6, 12])"),
        ("002 §renewal.4", False, "used since renewal")]


def test_an_excluded_payment_method_counts_like_an_excluded_provider():
    """renewal.5: no provider named, paid with the OneBip method: denied, both shown."""
    o = order(**RENEWAL) | {"payment_method": "onebip"}
    del o["payment_provider"]
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=o, usage=USAGE))
    assert d.outcome is Outcome.DENY
    assert _reasons(d)[0] == ("002 §renewal.5", False, "paid via unknown provider/onebip")
    del o["payment_method"]
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=o, usage=USAGE))
    assert d.outcome is Outcome.FULL_REFUND
    assert _reasons(d)[0] == ("002 §renewal.5", True, "paid via unknown provider/unknown method")


def test_an_unoffered_term_alone_goes_to_review():
    """billing.2 lists the terms offered: a 3-month renewal otherwise fine is reviewed."""
    o = order(**RENEWAL) | {"term_months": 3}
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=o, usage=USAGE))
    assert (d.outcome, d.refund) == (Outcome.NEEDS_REVIEW, Money(0, "USD"))


def test_a_partial_proposal_starts_at_a_two_month_term():
    """new.partial: "more than one month": a 2-month order over 10 GiB is reviewed with one
    month of 29.99 proposed as the charge; the same usage on one month is denied."""
    usage = {"bandwidth_bytes": 10 * GIB, "sessions": 100}
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=order(
        product_category="vpn", term_months=2, amount=money(5999)), usage=usage))
    assert (d.outcome, d.at_stake, d.refund, d.proposed_refund) == (
        Outcome.NEEDS_REVIEW, Money(5999, "USD"), Money(0, "USD"), Money(3000, "USD"))
    assert d.line_items == (LineItem("usage_charge", "1 month(s) of usage", Money(2999, "USD"),
                                     "002 §new.partial"),)
    assert _reasons(d)[-3:] == [
        ("002 §new.4", False, "10737418240 bytes used (must be below 10737418240)"),
        ("002 §new.5", True, "100 sessions (at most 100)"),
        ("002 §new.partial", True, "partial refund at the merchant's discretion: proposed "
         "charge 1 month(s) of 2 at 29.99 USD")]
    d = decide("cloudbehind", case("refund", T0 + 2 * DAY, order=order(
        product_category="vpn", term_months=1, amount=money(5999)), usage=usage))
    assert (d.outcome, d.proposed_refund) == (Outcome.DENY, None)


def _long_window(data: dict[str, Any]) -> None:
    data["guarantee"][0]["window"]["days"] = 90


def test_a_partial_proposal_charges_each_month_begun_in_the_merchants_zone():
    """With a 90-day window: a 12-month 59.99 order placed 1 March 10:00 in Paris and claimed
    1 April 10:30 there (08:30 UTC, before 09:00 UTC) has begun its second Paris month: 2 x 4.99
    proposed as the charge."""
    pack = _variant("cloudbehind", _long_window)
    data = case("refund", datetime(2025, 4, 1, 8, 30, tzinfo=UTC),
                order=order(product_category="vpn", term_months=12, amount=money(5999),
                            ordered_at="2025-03-01T09:00:00Z"),
                usage={"bandwidth_bytes": 11 * GIB, "sessions": 1}, time_zone="Europe/Paris")
    d = evaluate(pack, case_from_json(data), NOW)
    assert (d.outcome, d.proposed_refund) == (Outcome.NEEDS_REVIEW, Money(5999 - 998, "USD"))
    assert d.line_items[0].label == "2 month(s) of usage"
    assert d.line_items[0].amount == Money(998, "USD")


def test_a_partial_proposal_never_charges_more_months_than_the_term():
    """Three months begun on a two-month order: at most the two months are charged."""
    pack = _variant("cloudbehind", _long_window)
    data = case("refund", T0 + 70 * DAY, order=order(
        product_category="vpn", term_months=2, amount=money(5999)),
        usage={"bandwidth_bytes": 11 * GIB, "sessions": 1})
    d = evaluate(pack, case_from_json(data), NOW)
    assert (d.outcome, d.proposed_refund) == (Outcome.NEEDS_REVIEW, Money(1, "USD"))
    assert d.line_items[0].label == "2 month(s) of usage"
    assert ("002 §new.partial", True, "partial refund at the merchant's discretion: proposed "
            "charge 2 month(s) of 2 at 29.99 USD") in _reasons(d)


def test_a_partial_charge_rounded_up_never_exceeds_what_was_paid():
    """With fees rounded up, 59.99 over two months is 30.00 a month: two months would be 60.00,
    so the charge stops at the 59.99 paid and nothing is proposed back."""
    def change(data: dict[str, Any]) -> None:
        _long_window(data)
        data["money"]["fee_rounding"] = "ROUND_UP"
    data = case("refund", T0 + 40 * DAY, order=order(
        product_category="vpn", term_months=2, amount=money(5999)),
        usage={"bandwidth_bytes": 11 * GIB, "sessions": 1})
    d = evaluate(_variant("cloudbehind", change), case_from_json(data), NOW)
    assert (d.proposed_refund, d.line_items[0].amount) == (Money(0, "USD"), Money(5999, "USD"))
    assert d.reasons[-1].detail.endswith("2 month(s) of 2 at 30.00 USD")


def test_a_guarantee_covering_every_order_type_uses_the_first_matching_terms():
    """cloudbehind's renewal terms apply to a renewal, not the new-order terms listed first."""
    d = decide("cloudbehind", case("refund", T0 + 10 * DAY, order=order(**RENEWAL),
                                   usage=USAGE))
    assert d.outcome is Outcome.FULL_REFUND
    assert _reasons(d)[2][0] == "002 §renewal.1"


def test_without_a_partial_term_usage_over_the_limit_is_denied_whatever_the_term():
    """A bandwidth limit with no partial_over_bandwidth: a 12-month order over it is denied."""
    pack = _variant("cloudbehind", lambda d: d["guarantee"][0].pop("partial_over_bandwidth"))
    data = case("refund", T0 + 2 * DAY, order=order(product_category="vpn", term_months=12),
                usage={"bandwidth_bytes": 11 * GIB, "sessions": 1})
    d = evaluate(pack, case_from_json(data), NOW)
    assert (d.outcome, d.proposed_refund) == (Outcome.DENY, None)


def test_a_refund_case_built_without_an_order_cites_the_guarantee_window():
    """cloudbehind has no never-refundable categories, so the guarantee is the first rule to need
    the order: a Case built in code without one goes to review citing the first terms' window
    (new.1) and naming the missing fact, with nothing at stake."""
    data = case("refund", T0 + 2 * DAY, order=order(product_category="vpn"), usage=USAGE)
    without = dataclasses.replace(case_from_json(data), order=None)
    d = evaluate(pack("cloudbehind"), without, NOW)
    assert (d.outcome, d.at_stake) == (Outcome.NEEDS_REVIEW, None)
    assert [(r.clause, r.text, r.holds, r.detail) for r in d.reasons] == [
        ("002 §new.1", "you claim your refund within 7 days of your order date;", False,
         "the case does not give order, which this clause needs")]


def test_a_claim_reviewed_for_its_category_keeps_the_whole_order_at_stake():
    """1.1: an unknown category goes to a person with the 120.00 paid at stake, nothing refunded
    and all of it retained until someone decides."""
    d = decide("theopenhost", case("refund", T0 + 2 * DAY,
                                   order=order(product_category="widget")))
    assert (d.outcome, d.at_stake, d.refund, d.retained) == (
        Outcome.NEEDS_REVIEW, Money(12000, "USD"), Money(0, "USD"), Money(12000, "USD"))


def _renewals_with_a_reminder(data: dict[str, Any]) -> None:
    """theopenhost's guarantee extended to renewals, with 1.14b's 10-day notice of charges."""
    terms = data["guarantee"][0]
    terms["order_types"] = ["new", "renewal"]
    terms["reminder"] = {"days_before": 10, "clause": "1.14b"}


def test_an_unpriced_deduction_on_a_renewal_still_carries_the_reminder_date():
    """A renewal in EUR with an SSL certificate (1.1a states it in USD) goes to review; the
    decision still says when the renewal notice (1.14b, 10 days before) was due."""
    p = _variant("theopenhost", _renewals_with_a_reminder)
    o = order(type="renewal", auto_renew=True, amount=money(12000, "EUR"),
              addons=["ssl_certificate"])
    d = evaluate(p, case_from_json(case("refund", T0 + 2 * DAY, order=o)), NOW)
    assert (d.outcome, d.at_stake, d.refund, d.notice_by) == (
        Outcome.NEEDS_REVIEW, Money(12000, "EUR"), Money(0, "EUR"), T0 - 10 * DAY)
    assert ("003 §1.14b", True, "the renewal reminder was due by 2025-02-19") in _reasons(d)


@pytest.mark.parametrize(("months", "said"), [
    ([1, "6", 12], "whole months"), ([1, 6.0, 12], "whole months"), ([0, 6], "whole months"),
    ([True, 6], "whole months"), ([], "non-empty"), ("12", "must be a list")])
def test_terms_offered_that_are_not_whole_months_are_refused_with_the_pack(months, said):
    """A pack typo in billing.2's term lengths (the 6-month term quoted as text, a float, a
    zero, a boolean, no term at all, not a list) is refused when the pack is read, naming the
    key, not left to fail when a claim is evaluated."""
    def change(data: dict[str, Any]) -> None:
        data["guarantee"][1]["terms_offered"]["months"] = months

    with pytest.raises(PackError) as info:
        _variant("cloudbehind", change)
    assert info.value.key == "guarantee[1].terms_offered.months"
    assert said in info.value.message


def test_the_terms_offered_are_listed_when_a_term_is_not_one_of_them():
    """cloudbehind offers 1, 6 and 12 months (billing.2): a 3-month order is reviewed, and the
    reason lists the terms offered in order."""
    data = case("refund", T0 + 2 * DAY, order=order(**{**RENEWAL, "term_months": 3}),
                usage=USAGE)
    d = decide("cloudbehind", data)
    assert ("002 §billing.2", False, "term is 3 months (offered: [1, 6, 12])") in _reasons(d)
