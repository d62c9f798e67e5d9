"""A refund the gateway holds back cites the gateway's rule, its text and why, as a failed
reason."""

from __future__ import annotations

from typing import Any

from policy import case_from_json, evaluate, load_pack
from policy.payout import DISPUTE, REMAINDER
from tests.support.cases import DECIDED_AT, guarantee_claim

PACK = load_pack("theopenhost")


def _decide(**facts: Any):
    case = guarantee_claim(12000)
    case["order"] = {**case["order"], **facts}
    return evaluate(PACK, case_from_json(case), DECIDED_AT)


def _held_reason(decision):
    return [(r.clause, r.text, r.holds, r.detail) for r in decision.reasons
            if r.clause.startswith("gateway:")]


def test_a_disputed_payment_is_held_citing_the_dispute_rule():
    """An open dispute adds the gateway's dispute rule as a failed reason with its detail."""
    assert _held_reason(_decide(dispute="open")) == [
        (DISPUTE.citation, DISPUTE.text, False, "the payment's dispute is open: no refund is made")]


def test_a_refund_beyond_the_remainder_is_held_citing_the_remainder_rule():
    """Less left than granted adds the remainder rule as a failed reason saying both amounts."""
    assert _held_reason(_decide(refundable={"amount": 11999, "currency": "USD"})) == [
        (REMAINDER.citation, REMAINDER.text, False,
         "the policy grants 120.00 USD, but only 119.99 USD is left to refund of the payment; "
         "a person decides")]


def test_nothing_left_to_refund_denies_citing_the_remainder_rule():
    """Nothing left of the payment: the refund is denied, and the reason says what took it."""
    decision = _decide(refundable={"amount": 0, "currency": "USD"})
    assert decision.outcome.value == "deny" and decision.refund.amount == 0
    assert _held_reason(decision) == [
        (REMAINDER.citation, REMAINDER.text, False,
         "the policy grants 120.00 USD, but nothing is left to refund of the payment "
         "(refunded, in flight or pending already)")]
