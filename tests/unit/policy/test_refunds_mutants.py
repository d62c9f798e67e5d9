"""Refunds outside the money-back guarantee (003 §1.8, seeds 000 and 001), pinned where the base
tests stop at the outcome: the categories never refunded (the failed check and its words), the
words, holds and citation of every reason (the window on the service date,
the reason codes denied or reviewed, the service state, the note that a person decides), the
money at stake and refunded on each path, the review a missing fact or an unknown service state
leads to, and a pack that sends not-yet-started services to review. The mutation run found this
behaviour unpinned."""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import datetime, timedelta
from importlib import resources
from typing import Any

import pytest

from policy import Decision, Outcome, case_from_json, evaluate
from policy.money import Money
from policy.pack import Pack, parse_pack

from .builders import T0, case, decide, iso, order, pack

DAY = timedelta(days=1)
PAID = Money(12000, "USD")
NOTHING = Money(0, "USD")
WINDOW_DAY_1 = ("001 §1", True, "claimed on calendar day 1 after the service date (day 7 "
                "included; 2025-03-01 to 2025-03-02, UTC dates)")
PERSON_DECIDES = ("000 §3", True, "the policy states no automatic refund terms; a person "
                  "decides, and an approved credit is processed on verification back to the card")


def service_case(code: str = "dissatisfied", *, at: datetime = T0 + DAY,
                 **order_extra: Any) -> dict[str, Any]:
    """A digitalcare refund of a 120.00 USD support service delivered at T0, asked at ``at``."""
    return case("refund", at, request_extra={"reason_code": code},
                order=order(product_category="technical_support", **order_extra))


def service_refund(code: str = "dissatisfied", state: str | None = "completed",
                   **order_extra: Any) -> Decision:
    extra = {"service_date": iso(T0)} | order_extra
    if state is not None:
        extra["service_state"] = state
    return decide("digitalcare", service_case(code, **extra))


def person_decides(code: str) -> Decision:
    """A oneclick refund of a 120.00 USD order for the reason ``code``."""
    return decide("oneclick", case("refund", T0 + DAY, request_extra={"reason_code": code},
                                   order=order()))


def reasons(d: Decision) -> list[tuple[str, bool, str]]:
    return [(r.clause, r.holds, r.detail) for r in d.reasons]


def digitalcare_with(**service_refund_keys: Any) -> Pack:
    """The shipped digitalcare pack with these [service_refund] keys replaced."""
    text = resources.files("policy").joinpath("packs/digitalcare.toml").read_text()
    data = tomllib.loads(text)
    data["service_refund"].update(service_refund_keys)
    return parse_pack("digitalcare", data)


def test_a_service_not_yet_started_is_refunded_in_full_with_the_whole_payment_at_stake():
    """001 §3: a service not yet initiated is outside the clause: the whole 120.00 USD paid is
    refunded, nothing retained, and the state reads in words (no underscore)."""
    d = service_refund(state="not_started")
    assert d.outcome is Outcome.FULL_REFUND
    assert (d.at_stake, d.refund, d.retained) == (PAID, PAID, NOTHING)
    assert reasons(d) == [WINDOW_DAY_1, ("001 §3", True, "service is not started")]


@pytest.mark.parametrize("state", ["initiated", "completed"])
def test_a_started_service_is_denied_naming_its_state_with_the_payment_at_stake(state: str):
    """001 §3 (and §1): once initiated or completed the service is not refunded; the failed
    state check says which state, and the whole payment stays at stake and retained."""
    d = service_refund(state=state)
    assert d.outcome is Outcome.DENY
    assert (d.at_stake, d.refund, d.retained) == (PAID, NOTHING, PAID)
    assert reasons(d) == [WINDOW_DAY_1, ("001 §3", False, f"service is {state}")]


def test_an_unknown_service_state_goes_to_review_saying_the_state_is_not_given():
    """The state is a fact the Case must give: without it the decision is needs_review (not a
    refund, not a denial), the 001 §3 check failing and saying what is unknown."""
    d = service_refund(state=None)
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert (d.at_stake, d.refund, d.retained) == (PAID, NOTHING, PAID)
    assert reasons(d) == [WINDOW_DAY_1, ("001 §3", False,
                                         "the case does not say whether the service has started")]
    assert d.reasons[1].holds is False


@pytest.mark.parametrize(("code", "clause"), [
    ("user_error", "001 §1.b"), ("changed_requirements", "001 §1.b"),
    ("used_after_completion", "001 §1.b"), ("unused_portion", "001 §2.a"),
])
def test_a_denied_reason_fails_its_clause_naming_the_reason_code(code: str, clause: str):
    """001 §1.b and §2.a: the denial names the reason code and says it is not refunded, even for
    a service not yet started; the payment stays at stake and retained."""
    d = service_refund(code, state="not_started")
    assert d.outcome is Outcome.DENY
    assert (d.at_stake, d.refund, d.retained) == (PAID, NOTHING, PAID)
    assert reasons(d) == [
        WINDOW_DAY_1, (clause, False, f"the request's reason is {code}, which is not refunded"),
        ("001 §3", True, "service is not started")]
    assert d.reasons[1].holds is False


def test_a_provider_fault_within_the_window_is_reviewed_with_the_merchants_discretion_noted():
    """001 §1.a: a provider fault is reviewed whatever the state; the note says the merchant may
    offer a partial refund or credit at its discretion, and nothing is proposed or paid."""
    d = service_refund("provider_fault", state="completed")
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert (d.at_stake, d.refund, d.retained, d.proposed_refund) == (PAID, NOTHING, PAID, None)
    assert reasons(d) == [WINDOW_DAY_1, (
        "001 §1.a", True, "reason provider_fault: the merchant reviews the case and may offer a "
        "partial refund or credit at its discretion")]


def test_a_billing_error_is_reviewed_without_a_service_date_or_window():
    """001 §2.a: billing errors carry no 7-day window, so the service date is not needed and no
    window reason is given; the review note names the reason code."""
    d = decide("digitalcare", service_case("billing_error", at=T0 + 40 * DAY,
                                           service_state="completed"))
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert (d.at_stake, d.refund, d.retained) == (PAID, NOTHING, PAID)
    assert reasons(d) == [(
        "001 §2.a", True, "reason billing_error: the merchant reviews the case and may offer a "
        "partial refund or credit at its discretion")]


def test_a_service_issue_without_a_service_date_goes_to_review_naming_the_fact_and_window():
    """001 §1: the 7-day window runs from the service date; a Case without it cannot be judged,
    so it goes to review citing the window clause and naming order.service_date."""
    d = decide("digitalcare", service_case(service_state="not_started"))
    assert d.outcome is Outcome.NEEDS_REVIEW and d.refund == NOTHING
    assert reasons(d) == [
        ("001 §1", False, "the case does not give order.service_date, which this clause needs")]


@pytest.mark.parametrize(("pack_name", "clause"), [("digitalcare", "001 §1"),
                                                   ("oneclick", "000 §3")])
def test_a_refund_case_built_without_an_order_goes_to_review_citing_the_family_clause(
        pack_name: str, clause: str):
    """A Case built in code may lack the order (JSON cases must give one): the service window
    (001 §1) or the person-decides clause (000 §3) needs it, so the decision is needs_review
    citing that clause and naming the missing fact."""
    data = service_case(service_date=iso(T0), service_state="not_started")
    without = dataclasses.replace(case_from_json(data), order=None)
    d = evaluate(pack(pack_name), without, T0 + DAY)
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert reasons(d) == [
        (clause, False, "the case does not give order, which this clause needs")]


@pytest.mark.parametrize(("state", "outcome", "holds", "detail"), [
    ("not_started", Outcome.NEEDS_REVIEW, True, "service is not started"),
    ("completed", Outcome.DENY, False, "service is completed"),
], ids=["not started", "completed"])
def test_a_pack_may_send_services_not_yet_started_to_review(state: str, outcome: Outcome,
                                                            holds: bool, detail: str):
    """before_initiation = "needs_review": a service not yet started goes to a person (no
    refund, the payment at stake and retained); a started one is still denied."""
    terms = digitalcare_with(before_initiation="needs_review")
    data = service_case(service_date=iso(T0), service_state=state)
    d = evaluate(terms, case_from_json(data), T0 + DAY)
    assert d.outcome is outcome
    assert (d.at_stake, d.refund, d.retained) == (PAID, NOTHING, PAID)
    assert reasons(d) == [WINDOW_DAY_1, ("001 §3", holds, detail)]
    assert d.flags == ()


def test_a_refund_for_non_use_is_denied_naming_the_reason_with_the_order_at_stake():
    """000 §4: failing to use the account is not a cancellation, so a refund asked for non-use
    is denied, the check failing and naming the reason; the whole order stays at stake."""
    d = person_decides("non_use")
    assert d.outcome is Outcome.DENY
    assert (d.at_stake, d.refund, d.retained) == (PAID, NOTHING, PAID)
    assert reasons(d) == [("000 §4", False, "the request's reason is non_use")]
    assert d.reasons[0].holds is False and d.flags == ()


@pytest.mark.parametrize("code", ["other", "dissatisfied", "provider_fault"])
def test_any_other_refund_goes_to_a_person_back_to_the_card(code: str):
    """000 §3: the seed states no automatic refund terms: a person decides, an approved credit
    goes back to the card (flag credit_to_card); the whole order is at stake, nothing paid."""
    d = person_decides(code)
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert (d.at_stake, d.refund, d.retained) == (PAID, NOTHING, PAID)
    assert d.flags == ("credit_to_card",)
    assert reasons(d) == [PERSON_DECIDES]


@pytest.mark.parametrize(("category", "clause"), [("account_credit", "003 §1.8"),
                                                  ("domain_reseller_funds", "003 §1.8a")])
def test_a_non_refundable_category_is_denied_naming_it_with_the_order_at_stake(category: str,
                                                                               clause: str):
    """003 §1.8 and §1.8a: funds added as account credit or to the domain reseller are denied
    before any guarantee, the one failed check naming the category; the order stays at stake."""
    d = decide("theopenhost", case("refund", T0 + DAY, order=order(product_category=category)))
    assert d.outcome is Outcome.DENY
    assert (d.at_stake, d.refund, d.retained) == (PAID, NOTHING, PAID)
    assert reasons(d) == [(clause, False, f"{category} is not refundable")]
    assert d.reasons[0].holds is False


def test_a_refund_case_built_without_an_order_cites_the_first_non_refundable_clause():
    """The non-refundable categories are checked first and need the order's category: a Case
    built in code without an order goes to review citing the first such clause (003 §1.8)."""
    data = case("refund", T0 + DAY, order=order())
    without = dataclasses.replace(case_from_json(data), order=None)
    d = evaluate(pack("theopenhost"), without, T0 + DAY)
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert reasons(d) == [
        ("003 §1.8", False, "the case does not give order, which this clause needs")]
