"""A fact the case does not give turns the decision into needs_review, naming the fact and
clause."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from policy import Decision, EvaluationError, Outcome, Reason, case_from_json
from policy.money import Money
from policy.verdict import Context, Findings, Severity, show_money
from policy.verdict import decide as decide_with

from .builders import NOW, T0, case, decide, identity, iso, order, pack


def test_a_missing_fact_is_named_with_the_clause_that_needs_it():
    """A cancellation without next_billing_at goes to review citing that field and its clause."""
    d = decide("cloudbehind", case("cancellation", T0, order=order()))
    assert d.outcome is Outcome.NEEDS_REVIEW
    missing = [r for r in d.reasons if not r.holds]
    assert [(r.clause, r.detail) for r in missing] == [
        ("002 §billing.3",
         "the case does not give order.next_billing_at, which this clause needs")]
    assert missing[0].text


def _reasons(d: Decision) -> list[tuple[str, bool, str]]:
    return [(r.clause, r.holds, r.detail) for r in d.reasons]


def _vpn(at: datetime, **extra: Any) -> dict[str, Any]:
    return case("refund", at, order=order(product_category="vpn"),
                usage={"bandwidth_bytes": 1, "sessions": 1}, **extra)


def test_the_window_counts_calendar_days_in_the_merchants_zone_and_names_both_dates():
    """Ordered 1 March 04:00 in New York, claimed 8 March 21:00 there (9 March in UTC): day 7,
    inside cloudbehind's inclusive 7 days; the reason gives the local dates and the zone."""
    d = decide("cloudbehind", _vpn(T0 + timedelta(days=7, hours=17),
                                   time_zone="America/New_York"))
    assert d.outcome is Outcome.FULL_REFUND
    assert _reasons(d)[0] == (
        "002 §new.1", True, "claimed on calendar day 7 after the order date (day 7 included; "
        "2025-03-01 to 2025-03-08, America/New_York dates)")


def test_an_inclusive_window_keeps_its_last_day_and_refuses_the_next():
    """cloudbehind's 7 days end = inclusive: day 7 is in time, day 8 is not."""
    assert decide("cloudbehind", _vpn(T0 + timedelta(days=7))).outcome is Outcome.FULL_REFUND
    d = decide("cloudbehind", _vpn(T0 + timedelta(days=8)))
    assert d.outcome is Outcome.DENY
    assert _reasons(d)[0] == (
        "002 §new.1", False, "claimed on calendar day 8 after the order date (day 7 included; "
        "2025-03-01 to 2025-03-09, UTC dates)")


def test_an_exclusive_window_ends_before_its_last_day():
    """theopenhost's 16 days end = exclusive: day 15 is in time, day 16 is not."""
    assert decide("theopenhost", case("refund", T0 + timedelta(days=15),
                                      order=order())).outcome is Outcome.FULL_REFUND
    d = decide("theopenhost", case("refund", T0 + timedelta(days=16), order=order()))
    assert d.outcome is Outcome.DENY
    assert ("003 §1.1f", False, "claimed on calendar day 16 after the order date (day 16 "
            "excluded; 2025-03-01 to 2025-03-17, UTC dates)") in _reasons(d)


def test_a_claim_on_the_order_day_is_in_time_and_one_before_it_is_not():
    """Day 0 (an hour after ordering) is inside the window; a request dated the day before the
    order (day -1) is not."""
    d = decide("cloudbehind", _vpn(T0 + timedelta(hours=1)))
    assert d.outcome is Outcome.FULL_REFUND
    assert _reasons(d)[0][:2] == ("002 §new.1", True)
    d = decide("cloudbehind", _vpn(T0 - timedelta(days=1)))
    assert d.outcome is Outcome.DENY
    assert _reasons(d)[0] == (
        "002 §new.1", False, "claimed on calendar day -1 after the order date (day 7 included; "
        "2025-03-01 to 2025-02-28, UTC dates)")


def test_blank_identity_details_and_a_blank_reason_count_as_missing():
    """A username of one space and a reason of spaces are not given: both are named."""
    data = _vpn(T0 + timedelta(days=1))
    data["request"]["reason"] = "   "
    data["request"]["identity"]["username"] = " "
    d = decide("cloudbehind", data)
    assert d.outcome is Outcome.DENY
    assert ("002 §new.3", False, "missing: username, reason") in _reasons(d)


def test_a_group_of_alternatives_is_named_with_or():
    """theopenhost 1.13 needs a PayPal subscription id or an order number: neither given."""
    data = case("uptime_credit", T0 + timedelta(hours=1),
                request_extra={"identity": identity(order_number=None, main_domain=None)},
                order=order(), uptime={"measured_percent": "99.0", "incident_at": iso(T0)})
    d = decide("theopenhost", data, now=T0 + timedelta(hours=1))
    assert d.outcome is Outcome.DENY
    assert ("003 §1.13", False, "missing: main_domain, paypal_subscription_id or order_number"
            ) in _reasons(d)


def test_identity_checks_record_the_failure_at_the_severity_asked():
    """Findings.identity: missing details fail the rule's clause at the given severity; all
    details given add the rule's prepared reason, which fails nothing."""
    rule = pack("cloudbehind").guarantee[0].identity
    assert rule is not None
    given = case_from_json(_vpn(T0)).request.identity
    blank = case_from_json(_vpn(T0, request_extra={"identity": {}})).request.identity
    f = Findings()
    assert (f.identity(rule, given, "a reason", Severity.REVIEW), f.worst) == (True, Severity.OK)
    assert (f.identity(rule, blank, "a reason", Severity.REVIEW), f.worst) == (
        False, Severity.REVIEW)
    assert [(r.clause, r.holds, r.detail) for r in f.reasons] == [
        ("002 §new.3", True, "all required details given"),
        ("002 §new.3", False, "missing: username")]
    assert (f.identity(rule, blank, ""), f.worst) == (False, Severity.DENY)


def test_findings_keep_the_worst_severity_of_the_failed_checks_only():
    """A holding check never worsens the findings, a failed one only when it is worse, and notes
    always hold."""
    clause = pack("theopenhost").clauses["1.1"]
    f = Findings()
    assert (f.check(clause, True, "fine"), f.worst) == (True, Severity.OK)
    assert (f.check(clause, False, "look", Severity.REVIEW), f.worst) == (False, Severity.REVIEW)
    assert (f.check(clause, False, "minor", Severity.PARTIAL), f.worst) == (
        False, Severity.REVIEW)
    f.note(clause, "noted")
    assert f.worst == Severity.REVIEW
    assert [(r.clause, r.text, r.holds, r.detail) for r in f.reasons] == [
        ("003 §1.1", clause.text, True, "fine"), ("003 §1.1", clause.text, False, "look"),
        ("003 §1.1", clause.text, False, "minor"), ("003 §1.1", clause.text, True, "noted")]


@pytest.mark.parametrize(("amount", "currency"), [
    (1234, "USD"), (5, "USD"), (0, "USD"), (-1234, "USD"), (-5, "EUR"), (1234, "JPY"),
    (-7, "JPY"), (1234, "KWD"), (1, "KWD")])
def test_amounts_in_reasons_read_as_money_does(amount: int, currency: str):
    """show_money writes minor units exactly as str(Money) does, sign and decimals included."""
    assert show_money(amount, currency) == str(Money(amount, currency))


def test_amounts_in_several_currencies_each_keep_their_own_decimals():
    """The same process shows USD, JPY and KWD amounts, each with its own exponent."""
    assert [show_money(1234, c) for c in ("USD", "JPY", "KWD", "USD")] == [
        "12.34 USD", "1234 JPY", "1.234 KWD", "12.34 USD"]


def _ctx(currency: str = "USD") -> Context:
    return Context(pack("theopenhost"), case_from_json(case("refund", T0, order=order())), NOW,
                   currency)


def test_a_decision_derives_what_is_retained_from_what_is_at_stake():
    """decide: retained = at stake - refund - credit; fee and charge stand beside them; every
    part of the decision is what the rule passed."""
    d = decide_with(_ctx(), Outcome.PARTIAL_REFUND, [], at_stake=10000, refund=6000,
                    credit=1000, fee=500, charge=250, proposed_refund=7000,
                    effective_at=T0, access_until=T0 + timedelta(days=1),
                    balance_due_by=T0 + timedelta(days=2), notice_by=T0 + timedelta(days=3),
                    flags=("x",))
    assert d == Decision(
        "theopenhost", "refund", Outcome.PARTIAL_REFUND, NOW, "USD", Money(10000, "USD"),
        Money(6000, "USD"), Money(1000, "USD"), Money(500, "USD"), Money(250, "USD"),
        Money(3000, "USD"), Money(7000, "USD"), (), T0, T0 + timedelta(days=1),
        T0 + timedelta(days=2), T0 + timedelta(days=3), ("x",), (), None)


def test_a_decision_without_an_amount_at_stake_moves_nothing_by_default():
    """Nothing at stake: at_stake and proposed_refund None, every amount zero in the decision's
    currency, no dates, flags or line items."""
    d = decide_with(_ctx("EUR"), Outcome.NO_ACTION, [])
    zero = Money(0, "EUR")
    assert d == Decision("theopenhost", "refund", Outcome.NO_ACTION, NOW, "EUR", None, zero,
                         zero, zero, zero, zero, None, (), None, None, None, None, (), (), None)


def test_zero_amounts_are_in_each_decisions_own_currency():
    """A USD decision and then a EUR one: each zero is in its own currency."""
    assert decide_with(_ctx("USD"), Outcome.DENY, [], at_stake=0).retained == Money(0, "USD")
    d = decide_with(_ctx("EUR"), Outcome.FULL_REFUND, [], at_stake=100, refund=100)
    assert (d.at_stake, d.refund, d.retained, d.fee) == (
        Money(100, "EUR"), Money(100, "EUR"), Money(0, "EUR"), Money(0, "EUR"))
    assert decide_with(_ctx("EUR"), Outcome.DENY, [], proposed_refund=0).proposed_refund == (
        Money(0, "EUR"))


@pytest.mark.parametrize("amounts", [{"refund": -1}, {"credit": -1}, {"fee": -1},
                                     {"charge": -1}, {"refund": -1, "fee": 5},
                                     {"credit": -1, "charge": 5}, {"fee": -1, "refund": 5}])
def test_a_negative_amount_is_a_bug_in_the_rule_and_refused(amounts: dict[str, Any]):
    """decide refuses any negative refund, credit, fee or charge, naming the outcome."""
    with pytest.raises(EvaluationError,
                       match=r"^negative amount in deny decision: bug in a rule$"):
        decide_with(_ctx(), Outcome.DENY, [], at_stake=10, **amounts)


@pytest.mark.parametrize("amounts", [{"refund": 101}, {"credit": 101},
                                     {"refund": 60, "credit": 41}, {"proposed_refund": 101}])
def test_paying_out_more_than_is_at_stake_is_refused(amounts: dict[str, Any]):
    """Refund plus credit, or a proposed refund, beyond the amount at stake is a rule's bug."""
    with pytest.raises(EvaluationError,
                       match=r"^full_refund pays out more than is at stake: bug in a rule$"):
        decide_with(_ctx(), Outcome.FULL_REFUND, [], at_stake=100, **amounts)


def test_paying_out_exactly_what_is_at_stake_is_allowed():
    """Refund and credit together, or a proposed refund, equal to the stake keep nothing."""
    d = decide_with(_ctx(), Outcome.FULL_REFUND, [], at_stake=100, refund=60, credit=40,
                    proposed_refund=100)
    assert (d.refund, d.credit, d.retained, d.proposed_refund) == (
        Money(60, "USD"), Money(40, "USD"), Money(0, "USD"), Money(100, "USD"))


def test_a_decision_takes_the_findings_reasons_or_a_list_of_reasons():
    """decide accepts the Findings of a rule family or plain Reasons, in order."""
    clause = pack("theopenhost").clauses["1.1"]
    f = Findings()
    f.check(clause, False, "no")
    reason = Reason("x", "text", True, "yes")
    assert decide_with(_ctx(), Outcome.DENY, f).reasons == (
        Reason("003 §1.1", clause.text, False, "no"),)
    assert decide_with(_ctx(), Outcome.DENY, [reason]).reasons == (reason,)


def test_a_prepared_reason_that_fails_worsens_the_findings_to_its_severity():
    """Findings.add records a Reason as it is; a failed one raises the worst severity to the one
    given (never lowers it), a holding one leaves it."""
    f = Findings()
    held = Reason("x §1", "text", True, "given")
    failed_reason = Reason("x §2", "text", False, "not given")
    assert (f.add(held, Severity.DENY), f.worst) == (True, Severity.OK)
    assert (f.add(failed_reason, Severity.REVIEW), f.worst) == (False, Severity.REVIEW)
    assert (f.add(failed_reason, Severity.PARTIAL), f.worst) == (False, Severity.REVIEW)
    assert (f.add(failed_reason), f.worst) == (False, Severity.DENY)
    assert f.reasons == [held, failed_reason, failed_reason, failed_reason]
