"""The gateway's bounds after the merchant's rules: never more than is left of the payment,
never while it is disputed (``policy/payout.py``), cited in the Decision."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from policy import CaseError, case_from_json, case_to_json, evaluate, load_pack
from tests.support.cases import DECIDED_AT, guarantee_claim, overpayment

PACK = load_pack("theopenhost")
USD = "USD"


def _with(case: dict[str, Any], part: str, **facts: Any) -> dict[str, Any]:
    case[part] = {**case[part], **facts}
    return case


def _decide(case: dict[str, Any]) -> Any:
    return evaluate(PACK, case_from_json(case), DECIDED_AT)


def _failed(decision: Any) -> list[str]:
    return [r.clause for r in decision.reasons if not r.holds]


@pytest.mark.parametrize(("left", "outcome", "refund", "proposed"), [
    (12000, "full_refund", 12000, None),  # all of it left: the policy's refund stands
    (11999, "needs_review", 0, 11999),  # one cent short: a person decides, proposing the rest
    (1, "needs_review", 0, 1),
    (0, "deny", 0, None),  # nothing left: denied, saying so
])
def test_a_refund_is_bounded_by_what_is_left(left, outcome, refund, proposed):
    """The guarantee's full refund of 120.00 against what the ledger says is left."""
    case = _with(guarantee_claim(12000), "order", refundable={"amount": left, "currency": USD})
    decision = _decide(case)
    assert (decision.outcome.value, decision.refund.amount) == (outcome, refund)
    assert (decision.proposed_refund.amount if decision.proposed_refund else None) == proposed
    assert ("gateway: refundable remainder" in _failed(decision)) == (left < 12000)
    assert decision.at_stake.amount == 12000


@pytest.mark.parametrize(("dispute", "held"), [("open", True), ("lost", True), ("won", False)])
def test_a_dispute_open_or_lost_holds_the_refund(dispute, held):
    """Open or lost: needs_review citing the dispute rule, proposing the refund; won: paid."""
    decision = _decide(_with(guarantee_claim(12000), "order", dispute=dispute))
    assert (decision.outcome.value == "needs_review") == held
    assert ("gateway: disputes" in _failed(decision)) == held
    assert decision.refund.amount == (0 if held else 12000)
    if held:
        assert decision.proposed_refund.amount == 12000


def test_an_overpayment_is_bounded_by_its_payment():
    """An overpayment's refund (less the 5% fee) against the payment's remainder."""
    case = _with(overpayment(timedelta(days=3)), "payment",
                 refundable={"amount": 500, "currency": USD})
    decision = _decide(case)
    assert decision.outcome.value == "needs_review" and decision.proposed_refund.amount == 500
    assert _decide(_with(overpayment(timedelta(days=3)), "payment", dispute="open")
                   ).outcome.value == "needs_review"


def test_a_credit_is_not_bounded_by_the_payment():
    """Account credit (an old overpayment) moves no money back: the bound does not apply."""
    case = _with(overpayment(timedelta(days=60)), "payment",
                 refundable={"amount": 0, "currency": USD}, dispute="open")
    later = DECIDED_AT + timedelta(days=60)
    assert evaluate(PACK, case_from_json(case), later).outcome.value == "account_credit"


def test_a_case_without_the_facts_is_decided_as_before():
    """No refundable, no dispute: the merchant's rules alone decide."""
    assert _decide(guarantee_claim(12000)).outcome.value == "full_refund"


@pytest.mark.parametrize(("facts", "field"), [
    ({"refundable": {"amount": 12001, "currency": USD}}, "order.refundable.amount"),
    ({"refundable": {"amount": 100, "currency": "EUR"}}, "order.refundable.currency"),
    ({"dispute": "maybe"}, "order.dispute"),
])
def test_impossible_facts_are_refused_naming_the_field(facts, field):
    """More left than was paid, another currency, an unknown dispute state: CaseError."""
    with pytest.raises(CaseError) as raised:
        case_from_json(_with(guarantee_claim(12000), "order", **facts))
    assert raised.value.field == field


def test_the_facts_survive_the_json_round_trip():
    """case_to_json gives back what case_from_json read."""
    case = _with(guarantee_claim(12000), "order", refundable={"amount": 7, "currency": USD},
                 dispute="won")
    assert case_to_json(case_from_json(case))["order"]["refundable"] == {"amount": 7,
                                                                         "currency": USD}
    assert case_to_json(case_from_json(case))["order"]["dispute"] == "won"


def test_a_held_refund_keeps_the_decisions_flags():
    """A refund held back by the dispute rule keeps what the merchant's rules flagged (the
    shell acts on flags: credit to card, support withheld, ...)."""
    import dataclasses

    from policy.payout import bounded
    from policy.verdict import Context

    case = case_from_json(_with(guarantee_claim(12000), "order", dispute="open"))
    granted = evaluate(PACK, case_from_json(guarantee_claim(12000)), DECIDED_AT)
    flagged = dataclasses.replace(granted, flags=("credit_to_card",))
    held = bounded(Context(PACK, case, DECIDED_AT, USD), flagged)
    assert held.outcome.value == "needs_review" and held.flags == ("credit_to_card",)
