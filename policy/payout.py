"""The gateway's own bounds on a refund, applied after the merchant's rules: a payment is never
refunded beyond what is left of it, nor while a dispute is returning (or has returned) the money.

These are not clauses of the merchant's documents but of the gateway, and are cited as such, so a
decision says why a refund its policy granted was held back. The facts are the ledger's, given in
the Case (``order`` or, for overpayments, ``payment``: ``refundable`` and ``dispute``); when the
Case does not give them the decision stands, and the ledger applies the same bound when it
creates the refund (``ledger.refundable``).
"""

from __future__ import annotations

from policy.case import DisputeState, Order, Payment, RequestKind
from policy.decision import Decision, Outcome, new_reason
from policy.pack import Clause
from policy.verdict import Context, decide

REMAINDER = Clause(
    "gateway: refundable remainder",
    "A payment is never refunded beyond what was captured: every refund done, in flight or "
    "pending, ours or made at the provider, counts against it.")
DISPUTE = Clause(
    "gateway: disputes",
    "A payment under dispute is not refunded: while the dispute is open the money may go back "
    "through it, and once it is lost it already has.")


def bounded(ctx: Context, decision: Decision) -> Decision:
    """``decision``, or a review (or denial) in its place when its refund does not fit."""
    if not decision.refund.amount:
        return decision
    facts = _facts(ctx)
    if facts is None:
        return decision
    if facts.dispute in (DisputeState.OPEN, DisputeState.LOST):
        return _held(ctx, decision, Outcome.NEEDS_REVIEW, DISPUTE,
                     f"the payment's dispute is {facts.dispute.value}: no refund is made",
                     proposed=decision.refund.amount)
    left = facts.refundable
    if left is None or decision.refund.amount <= left.amount:
        return decision
    wanted = ctx.show(decision.refund.amount)
    if left.amount == 0:
        return _held(ctx, decision, Outcome.DENY, REMAINDER,
                     f"the policy grants {wanted}, but nothing is left to refund of the payment "
                     "(refunded, in flight or pending already)", proposed=None)
    return _held(ctx, decision, Outcome.NEEDS_REVIEW, REMAINDER,
                 f"the policy grants {wanted}, but only {ctx.show(left.amount)} is left to refund "
                 "of the payment; a person decides", proposed=left.amount)


def _facts(ctx: Context) -> Order | Payment | None:
    if ctx.case.request.kind is RequestKind.OVERPAYMENT:
        return ctx.case.payment
    return ctx.case.order


def _held(ctx: Context, decision: Decision, outcome: Outcome, clause: Clause, detail: str,
          proposed: int | None) -> Decision:
    stake = decision.at_stake.amount if decision.at_stake is not None else None
    if stake is not None and proposed is not None:
        proposed = min(proposed, stake)
    reasons = (*decision.reasons, new_reason(clause.citation, clause.text, False, detail))
    return decide(ctx, outcome, reasons, at_stake=stake, proposed_refund=proposed,
                  flags=decision.flags, basis=clause)
