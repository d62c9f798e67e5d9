"""Account credit that gets used: applied to the account's next invoices, oldest credit first, each
use a ledger entry naming the credit and what it paid (003 §1.7c, §1.8, §1.12), never cash.

* **Stripe customers** (the default, ``stripe.credit_to_customer_balance``): the credit is a
  negative customer balance at Stripe, which Stripe applies to the next invoice it finalises.
  The invoice's ``starting_balance`` and ``ending_balance`` say how much it consumed; that much
  is recorded as used, against the grants Stripe holds, oldest first.
* **PayPal** (and Stripe accounts whose credit the ledger holds): PayPal bills a subscription
  itself and has no customer balance, so the credit is applied to the account's next completed
  subscription payment as a partial refund of that payment, of at most what it paid. The
  customer pays the period less the credit; nothing beyond a payment ever leaves as cash.

Both run inside the event's transaction, under a lock per account, so two payments applied side
by side never use one credit twice; an application is recorded once per invoice or payment.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from adapters import ledger_credit
from ledger import refundable
from ledger.locks import serialize, serialize_all
from ledger.models import AccountCredit, Decision, DecisionStatus, Payment, Subscription
from ledger.objects import peek
from policy import Outcome, decision_to_json
from policy.decision import new_decision, new_reason
from policy.money import Money
from service.bootstrap import Container
from workers.actions import CREDIT_APPLICATION, new_id, plan_actions
from workers.cases import iso, money, payment_by_ref
from workers.context import EventContext
from workers.decide import overpayment_decided

# The gateway's own rule, cited like the policy's clauses (see policy/payout.py).
CLAUSE = "gateway: account credit"
_TEXT = ("Account credit is applied to the account's next invoices, oldest credit first, and is "
         "never paid out in cash.")


def stripe_balance_applied(session: Session, container: Container, ctx: EventContext,
                           inbox_id: int, now: datetime) -> list[str]:
    """Record the credit a finalised Stripe invoice took from the customer balance."""
    obj = ctx.payload["data"]["object"]
    customer, invoice = obj.get("customer"), obj.get("id")
    start, end = obj.get("starting_balance"), obj.get("ending_balance")
    if not (isinstance(customer, str) and isinstance(invoice, str)
            and _whole(start) and _whole(end)):
        return []  # not finalised yet (ending_balance is null until then)
    consumed = max(-start, 0) - max(-end, 0)  # Stripe's balance is negative while in credit
    currency = str(obj.get("currency", "")).upper()
    if consumed <= 0 or not currency:
        return []
    serialize(session, "credit", ctx.merchant, customer)
    if ledger_credit.applied(session, ctx.merchant, invoice):
        return []  # invoice.finalized and invoice.paid both carry it: recorded once
    grants = ledger_credit.open_grants(session, ctx.merchant, customer, currency,
                                       ledger_credit.STRIPE_BALANCE)
    for grant, take in ledger_credit.plan_uses(grants, consumed):
        ledger_credit.use(session, grant, take, applied_to=invoice, decision_id=None,
                          action_id=None, now=now,
                          reason=f"applied by Stripe to invoice {invoice} from the customer "
                                 f"balance (credit {grant.id}, granted under "
                                 f"{grant.clause or 'review'})")
    return []


def stripe_balance_returned(session: Session, container: Container, ctx: EventContext,
                            inbox_id: int, now: datetime) -> list[str]:
    """A voided Stripe invoice gives back the customer balance it had applied (Stripe does so
    since API version 2019-12-03): the uses recorded against it are given back to their grants,
    which the next invoice may use again."""
    obj = ctx.payload["data"]["object"]
    customer, invoice = obj.get("customer"), obj.get("id")
    if not (isinstance(customer, str) and isinstance(invoice, str)) or obj.get("status") != "void":
        return []
    serialize(session, "credit", ctx.merchant, customer)
    ledger_credit.give_back(session, ctx.merchant, invoice, now=now,
                            reason=f"Stripe returned the customer balance applied to invoice "
                                   f"{invoice} when it was voided")
    return []


def paypal_payment_takes_credit(session: Session, container: Container, ctx: EventContext,
                                inbox_id: int, now: datetime) -> list[str]:
    """Apply the account's ledger credit to its next completed PayPal subscription payment, as
    a partial refund of that payment; returns the decision recorded for it, if any."""
    resource = ctx.payload["resource"]
    if resource.get("sale_id") or not resource.get("billing_agreement_id"):
        return []
    sale = payment_by_ref(session, ctx.merchant, resource["id"])
    sub = peek(session, Subscription, ctx.ref(resource["billing_agreement_id"]))
    if sale is None or sub is None or sale.status != "completed" or sale.paid_at is None:
        return []
    # The payer's account, and the subscription's own id: what a grant made before PayPal named
    # the payer (a subscription created but not yet approved) was filed under.
    accounts = list(dict.fromkeys(a for a in (sub.customer_ref, sub.provider_id) if a))
    account = accounts[0]
    if not ledger_credit.ever_granted(session, ctx.merchant, accounts, ledger_credit.LEDGER):
        # Most payments: one indexed look before any lock. A grant committed just after this
        # look is used by the account's next payment instead.
        return []
    if overpayment_decided(session, ctx.merchant, sale.provider_id):
        return []  # itself paid too much: refunded or credited as such, not a credit's target
    serialize_all(session, [("credit", ctx.merchant, a) for a in accounts])
    if ledger_credit.applied(session, ctx.merchant, sale.provider_id):
        return []
    grants = sorted((g for a in accounts for g in ledger_credit.open_grants(
        session, ctx.merchant, a, sale.currency, ledger_credit.LEDGER, granted_by=sale.paid_at)),
        key=lambda g: (g.grant.created_at, g.grant.id))  # oldest first, whichever account
    position = refundable.remainder(session, refundable.lock(session, sale))
    plan = ledger_credit.plan_uses(grants, min(position.left.amount, sum(g.left for g in grants)))
    if not plan or position.blocked_by() is not None:
        return []  # nothing to use, or the payment is disputed: the credit waits for the next
    left = {g.grant.id: g.left for g in grants}
    return [_record(session, container, ctx.merchant, account, sale, plan, left, inbox_id, now)]


def _record(session: Session, container: Container, merchant: str, account: str,
            sale: Payment, plan: list[tuple[AccountCredit, int]], left: dict[int, int],
            inbox_id: int, now: datetime) -> str:
    """A decision that applies ``plan`` to ``sale``: one refund action per credit drawn on,
    each use of credit naming its action (a failed refund gives the credit back); ``left``:
    what was left of each credit before it."""
    total = sum(take for _, take in plan)
    applied = Money(total, sale.currency)
    settings = container.settings.merchant(merchant)
    pack = settings.policy_pack if settings else ""
    details = [f"credit {grant.id} ({grant.clause or 'review'}): "
               f"{Money(take, sale.currency)}" for grant, take in plan]
    reason = new_reason(CLAUSE, _TEXT, True,
                        f"{applied} of account credit applied to PayPal payment "
                        f"{sale.provider_id} of {Money(sale.amount, sale.currency)}, as a "
                        f"partial refund of it: " + "; ".join(details))
    zero = Money(0, sale.currency)
    outcome = Outcome.FULL_REFUND if total == sale.amount else Outcome.PARTIAL_REFUND
    decision = new_decision(
        pack=pack, request_kind=CREDIT_APPLICATION, outcome=outcome, decided_at=now,
        currency=sale.currency, at_stake=Money(sale.amount, sale.currency), refund=applied,
        credit=zero, fee=zero, charge=zero, retained=zero, proposed_refund=None, line_items=(),
        effective_at=None, access_until=None, balance_due_by=None, notice_by=None,
        flags=("credit_applied",), reasons=(reason,), basis=CLAUSE)
    case = {"payment": {"id": sale.provider_id, "amount": money(sale.amount, sale.currency),
                        "received_at": iso(sale.paid_at)},
            "credits": [{"id": grant.id, "clause": grant.clause, "left": money(
                left[grant.id], grant.currency), "applied": money(take, sale.currency)}
                for grant, take in plan]}
    row = Decision(id=new_id("dec"), merchant=merchant, account_ref=account,
                   payment_ref=sale.provider_id, pack=pack, request_kind=CREDIT_APPLICATION,
                   outcome=outcome.value, case=case, decision=decision_to_json(decision),
                   evaluated_at=now, source_event_id=inbox_id, status=DecisionStatus.RECORDED)
    session.add(row)
    drawn = []
    for grant, take in plan:
        # Fits: the remainder was read under the payment's lock, which this transaction holds.
        (action,) = plan_actions(session, row, refund=Money(take, sale.currency), credit=None,
                                 payment=sale, clause=CLAUSE,
                                 reason=f"account credit {grant.id} applied to "
                                        f"{sale.provider_id}", now=now)
        drawn.append((grant, take, action))
    session.flush()  # the actions exist before the uses that name them
    for grant, take, action in drawn:
        ledger_credit.use(session, grant, take, applied_to=sale.provider_id,
                          decision_id=row.id, action_id=action.id, now=now,
                          reason=f"applied to PayPal payment {sale.provider_id} by refund "
                                 f"action {action.id}")
    return row.id


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) < 10**14
