"""What is left to refund of a payment, taken under the payment's lock: the one bound on money out.

remainder = captured - every refund that is pending, executing, submitted or succeeded, ours
(refund actions) and the provider's (refund and reversal rows, a dashboard refund included),
each counted once. It is computed where money is committed: when a decision creates a refund
action, when a review approval adds one, and when an action is about to call the provider. Each
of those takes ``lock`` first, so two of them for one payment never count at the same time
(PostgreSQL: ``SELECT ... FOR UPDATE`` on the payment's row; SQLite: every transaction is a write
transaction, ``BEGIN IMMEDIATE``, so there is one at a time anyway).

A payment under dispute is refunded through the dispute, never a second time by refund: while a
dispute is open, or after it was lost (the funds already went back), ``blocked_by`` names it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from ledger.db import reading
from ledger.models import Action, ActionStatus, Dispute, DisputeState, Payment, Refund
from ledger.objects import held
from policy.money import Money

# Refund actions that have money leaving, or about to: everything but a failure.
COMMITTED_ACTIONS = (ActionStatus.PENDING, ActionStatus.EXECUTING, ActionStatus.SUBMITTED,
                     ActionStatus.SUCCEEDED)
# A provider refund that returned nothing, in either provider's spelling (lower case): the one
# list the remainder, the executor and both providers' refund answers and webhooks read.
GONE = ("failed", "canceled", "cancelled")


@dataclass(frozen=True, slots=True)
class Remainder:
    """A payment's refund position at one moment, under its lock."""

    payment_ref: str
    captured: Money
    committed: Money  # refunded, in flight or pending
    dispute: Dispute | None  # the dispute that blocks a refund, if any

    @property
    def left(self) -> Money:
        return Money(max(self.captured.amount - self.committed.amount, 0), self.captured.currency)

    def blocked_by(self) -> Refusal | None:
        """Why no refund may be made at all (a dispute), or None."""
        if self.dispute is None:
            return None
        verb = "is open" if self.dispute.state == DisputeState.OPEN else "was lost"
        return Refusal("disputed", f"dispute {self.dispute.provider_id} on payment "
                       f"{self.payment_ref} {verb} ({self.dispute.status}): the money goes back "
                       "through the dispute, not a refund")

    def refusal(self, refund: Money) -> Refusal | None:
        """Why ``refund`` may not be made now, or None when it fits."""
        blocked = self.blocked_by()
        if blocked is not None:
            return blocked
        if refund.currency != self.captured.currency:
            return Refusal("currency_mismatch", f"payment {self.payment_ref} is in "
                           f"{self.captured.currency}, not {refund.currency}")
        if refund.amount > self.left.amount:
            return Refusal("exceeds_remainder",
                           f"{refund} is more than is left to refund of payment "
                           f"{self.payment_ref}: {self.left} of {self.captured} "
                           f"({self.committed} refunded, in flight or pending)")
        return None


@dataclass(frozen=True, slots=True)
class Refusal:
    """A refund that may not be made: ``code`` for machines, ``message`` for people."""

    code: str  # disputed | currency_mismatch | exceeds_remainder
    message: str

    def __str__(self) -> str:
        return self.message


def lock(session: Session, payment: Payment) -> Payment:
    """Hold the payment's row until the transaction ends, and read it afresh (a drain that
    already holds it, having just written it, keeps what it wrote)."""
    if held(session, Payment, payment.merchant, payment.provider_id) is payment:
        return payment
    with reading(session, (Payment.id, payment.id)):
        return session.scalars(select(Payment).where(Payment.id == payment.id)
                               .with_for_update()
                               .execution_options(populate_existing=True)).one()


def remainder(session: Session, payment: Payment, *, excluding: Action | None = None
              ) -> Remainder:
    """The payment's position; ``excluding`` leaves out one action and the refund it made (an
    action checking itself before it calls the provider). Call ``lock`` first."""
    ref = payment.provider_id
    excluding_action = excluding.id if excluding is not None else None
    with reading(session, (Action.payment_ref, ref), (Refund.payment_ref, ref),
                 (Dispute.payment_ref, ref)):
        params = {"merchant": payment.merchant, "provider": payment.provider, "payment": ref}
        refunds = session.scalars(_OF_PAYMENT[Refund], params).all()
        actions = session.scalars(_OF_PAYMENT[Action], params).all()
        disputes = session.scalars(_OF_PAYMENT[Dispute], params).all()
    live = [r for r in refunds if r.status.lower() not in GONE
            and (excluding_action is None or r.action_id != excluding_action)]
    made = {r.action_id for r in live if r.action_id} | {r.provider_id for r in live}
    in_flight = sum(a.amount for a in actions
                    if a.status in COMMITTED_ACTIONS and a.id != excluding_action
                    and a.id not in made and a.provider_ref not in made)
    # The provider's own total (a Stripe charge's amount_refunded) also catches a refund whose
    # own event has not arrived; it may already hold the excluded action's refund.
    reported = (payment.amount_refunded or 0) - (excluding.amount if excluding is not None else 0)
    refunded = max(sum(r.amount for r in live), reported)
    blocking = next((d for d in disputes if d.state != DisputeState.WON), None)
    return Remainder(ref, Money(payment.amount, payment.currency),
                     Money(refunded + in_flight, payment.currency), blocking)


def _of_payment(model: type[Refund] | type[Action] | type[Dispute]) -> Select[Any]:
    return select(model).where(model.merchant == bindparam("merchant"),
                               model.provider == bindparam("provider"),
                               model.payment_ref == bindparam("payment"))


# What counts against a payment, asked with the parameters merchant, provider and payment (its
# provider id); built once, since building them cost more than asking them.
_OF_PAYMENT: dict[type, Select[Any]] = {
    Refund: _of_payment(Refund),
    Action: _of_payment(Action).where(Action.kind == "refund"),
    Dispute: _of_payment(Dispute).order_by(Dispute.id),
}
