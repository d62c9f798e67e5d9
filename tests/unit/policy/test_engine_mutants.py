"""The evaluation time: any timezone-aware datetime, decided in UTC; anything else refused."""

from __future__ import annotations

import time
import tomllib
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from importlib import resources

import pytest

from policy import EvaluationError, case_from_json, evaluate
from policy.pack import Pack, parse_pack

from .builders import NOW, T0, case, iso, money, order, pack


class NoOffset(tzinfo):
    """A tzinfo that knows no offset: a datetime with it is still naive."""

    def utcoffset(self, dt):
        return None

    def dst(self, dt):
        return None

    def tzname(self, dt):
        return None


def _decide(now):
    return evaluate(pack("theopenhost"), case_from_json(case("refund", T0, order=order())), now)


def test_a_decision_at_another_offset_is_the_decision_at_the_same_instant_in_utc():
    """The same instant given at +14:00 decides exactly as in UTC, with decided_at in UTC."""
    east = NOW.astimezone(timezone(timedelta(hours=14)))
    decision = _decide(east)
    assert decision == _decide(NOW)
    assert decision.decided_at.tzinfo is UTC and decision.decided_at == NOW


def test_the_machines_time_zone_does_not_change_the_decision(monkeypatch):
    """Converting a non-UTC evaluation time never goes through the machine's local zone."""
    monkeypatch.setenv("TZ", "America/St_Johns")
    time.tzset()
    try:
        decision = _decide(NOW.astimezone(timezone(timedelta(hours=2))))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert decision.decided_at.tzinfo is UTC and decision == _decide(NOW)


@pytest.mark.parametrize("now", [datetime(2025, 6, 1), datetime(2025, 6, 1, tzinfo=NoOffset()),
                                 "2025-06-01T00:00:00Z", NOW.date()],
                         ids=["naive", "tzinfo without offset", "string", "date"])
def test_an_evaluation_time_that_is_not_timezone_aware_is_refused(now):
    """evaluate raises EvaluationError, saying what it needs, for a time that is not aware."""
    with pytest.raises(EvaluationError, match="now must be a timezone-aware datetime"):
        _decide(now)


def _pack_without(name: str, *sections: str) -> Pack:
    """The shipped pack ``name`` with these rule sections taken out."""
    data = tomllib.loads(resources.files("policy").joinpath(f"packs/{name}.toml").read_text())
    for section in sections:
        del data[section]
    return parse_pack(name, data)


def _only_reason(decision) -> tuple[str, str, bool, str]:
    (reason,) = decision.reasons
    return (reason.clause, reason.text, reason.holds, reason.detail)


def test_a_request_the_pack_has_no_rule_for_goes_to_a_person_saying_so():
    """oneclick (000) has no overpayment rule: review, citing no clause, naming the kind."""
    data = case("overpayment", T0, payment={"amount": money(500), "received_at": iso(T0),
                                            "overpaid_amount": money(100)})
    decision = evaluate(pack("oneclick"), case_from_json(data), NOW)
    assert decision.outcome.value == "needs_review"
    assert _only_reason(decision) == (
        "000 (no clause)", "", False,
        "pack oneclick has no rule for overpayment requests; a person decides")


@pytest.mark.parametrize(("kind", "sections"), [
    ("cancellation", ["cancellation"]),
    ("refund", ["guarantee", "non_refundable"]),
])
def test_a_pack_without_the_rule_sends_the_request_to_a_person(kind, sections):
    bare = _pack_without("theopenhost", *sections)
    decision = evaluate(bare, case_from_json(case(kind, T0, order=order())), NOW)
    assert decision.outcome.value == "needs_review"
    assert _only_reason(decision) == (
        "003 (no clause)", "", False,
        f"pack theopenhost has no rule for {kind} requests; a person decides")


def test_a_request_dated_after_the_evaluation_time_goes_to_a_person():
    decision = evaluate(pack("theopenhost"),
                        case_from_json(case("refund", NOW + timedelta(seconds=1), order=order())),
                        NOW)
    assert decision.outcome.value == "needs_review"
    assert _only_reason(decision) == (
        "003 (no clause)", "", False,
        "the request is dated after the evaluation time; check the clocks")


def test_the_decision_currency_is_the_orders_unless_an_overpayment_names_its_payment():
    """A refund request decides in its order's currency even when the Case also carries a
    payment in another one."""
    data = case("refund", T0, order=order(amount=money(12000, "EUR")),
                payment={"amount": money(500, "USD"), "received_at": iso(T0),
                         "overpaid_amount": money(100, "USD")})
    assert evaluate(pack("theopenhost"), case_from_json(data), NOW).currency == "EUR"
