"""What is left to refund, asked inside a transaction that has already written: ``remainder``
counts the refunds, actions and disputes this transaction added and has not flushed, and
``lock`` reads the payment afresh without losing what this transaction changed on it.

A drain batch and a review approval write several things before they ask what is left (they
query without autoflush, flushing only what the question reads); missing one of their own
pending refunds would let a second refund of the same money through."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from ledger.models import Action, ActionStatus, Decision, Dispute, Payment, Refund
from ledger.refundable import lock, remainder
from policy.money import Money
from tests.support.ledger import add_in_order

MERCHANT = "theopenhost"
AT = datetime(2026, 11, 1, tzinfo=UTC)
CHARGE = "ch_left"


def _payment(amount: int = 5000, refunded: int = 0) -> Payment:
    return Payment(merchant=MERCHANT, provider="stripe", provider_id=CHARGE, version_at=AT,
                   version_event="evt_charge", kind="charge", status="succeeded",
                   amount=amount, amount_refunded=refunded, currency="USD", paid_at=AT)


def _decision(name: str) -> Decision:
    return Decision(id=f"dec_{name}", merchant=MERCHANT, account_ref="cus_1",
                    payment_ref=CHARGE, pack="p", request_kind="refund",
                    outcome="partial_refund", case={}, decision={}, evaluated_at=AT)


def _action(name: str, amount: int) -> Action:
    return Action(id=f"act_{name}", decision_id=f"dec_{name}", merchant=MERCHANT,
                  kind="refund", provider="stripe", payment_ref=CHARGE, amount=amount,
                  currency="USD", status=ActionStatus.PENDING, created_at=AT, updated_at=AT)


def _refund(name: str, amount: int) -> Refund:
    return Refund(merchant=MERCHANT, provider="stripe", provider_id=f"re_{name}",
                  version_at=AT, version_event=f"evt_{name}", payment_ref=CHARGE,
                  status="succeeded", amount=amount, currency="USD", refunded_at=AT)


def _dispute() -> Dispute:
    return Dispute(merchant=MERCHANT, provider="stripe", provider_id="dp_1", version_at=AT,
                   version_event="evt_dp", payment_ref=CHARGE, status="needs_response",
                   amount=5000, currency="USD", opened_at=AT)


def _stored_payment(container) -> None:
    add_in_order(container, _payment())


def test_a_pending_refund_action_not_yet_flushed_counts(container):
    add_in_order(container, _payment(), _decision("a"))
    with container.sessions() as session, session.begin():
        payment = lock(session, session.scalars(select(Payment)).one())
        session.add(_action("a", 1200))  # this transaction's own, not flushed
        position = remainder(session, payment)
    assert position.committed == Money(1200, "USD")
    assert position.left == Money(3800, "USD")
    assert position.refusal(Money(3801, "USD")) is not None


def test_a_refund_row_not_yet_flushed_counts(container):
    _stored_payment(container)
    with container.sessions() as session, session.begin():
        payment = lock(session, session.scalars(select(Payment)).one())
        session.add(_refund("dash", 2000))  # a dashboard refund this batch just applied
        position = remainder(session, payment)
    assert position.committed == Money(2000, "USD")
    assert position.refusal(Money(3001, "USD")) is not None
    assert position.refusal(Money(3000, "USD")) is None


def test_a_dispute_not_yet_flushed_blocks_the_refund(container):
    _stored_payment(container)
    with container.sessions() as session, session.begin():
        payment = lock(session, session.scalars(select(Payment)).one())
        session.add(_dispute())
        position = remainder(session, payment)
    refusal = position.refusal(Money(100, "USD"))
    assert refusal is not None and refusal.code == "disputed"


def test_a_refund_whose_status_is_written_in_capitals_still_counts_unless_it_failed(container):
    failed, done = _refund("failed", 1000), _refund("done", 700)
    failed.status, done.status = "FAILED", "COMPLETED"  # PayPal's words
    add_in_order(container, _payment(), failed, done)
    with container.sessions() as session, session.begin():
        position = remainder(session, lock(session, session.scalars(select(Payment)).one()))
    assert position.committed == Money(700, "USD")


def test_a_failed_refund_of_the_excluded_action_is_not_counted_either(container):
    """An action checking itself: its own refund is left out; a failed refund never counts."""
    mine, failed = _refund("mine", 1500), _refund("other", 900)
    mine.action_id, failed.status = "act_a", "failed"
    add_in_order(container, _payment(), _decision("a"), _action("a", 1500), mine, failed)
    with container.sessions() as session, session.begin():
        payment = lock(session, session.scalars(select(Payment)).one())
        action = session.get(Action, "act_a")
        position = remainder(session, payment, excluding=action)
    assert position.committed == Money(0, "USD")


def test_lock_keeps_what_this_transaction_changed_on_the_payment(container):
    """A payment read and changed here (not through the drain's cache) is flushed, not
    overwritten by the locking read."""
    _stored_payment(container)
    with container.sessions() as session, session.begin():
        payment = session.scalars(select(Payment)).one()
        payment.amount_refunded = 4000  # the charge's own total, as an event just said
        locked = lock(session, payment)
        position = remainder(session, locked)
    assert locked.amount_refunded == 4000
    assert position.left == Money(1000, "USD")


def test_lock_reads_the_payment_afresh_after_another_transaction_changed_it(container):
    """Objects outlive their transaction here (no expiry on commit): a payment read in an
    earlier transaction and refunded elsewhere since is read again, not trusted."""
    _stored_payment(container)
    with container.sessions() as session:
        with session.begin():
            payment = session.scalars(select(Payment)).one()
        with container.sessions() as other, other.begin():
            other.scalars(select(Payment)).one().amount_refunded = 5000
        with session.begin():
            position = remainder(session, lock(session, payment))
    assert position.left == Money(0, "USD")
    assert position.refusal(Money(1, "USD")) is not None


def test_an_action_checking_itself_is_not_counted_in_the_providers_total_either(container):
    """The charge's amount_refunded already holds this action's own refund (Stripe counted it
    before its refund event arrived): checking itself again, the action sees all but its own."""
    add_in_order(container, _payment(refunded=1500), _decision("a"), _action("a", 1500))
    with container.sessions() as session, session.begin():
        payment = lock(session, session.scalars(select(Payment)).one())
        position = remainder(session, payment, excluding=session.get(Action, "act_a"))
    assert position.committed == Money(0, "USD")
    assert position.refusal(Money(5000, "USD")) is None


def test_only_this_merchants_and_this_providers_refunds_count(container):
    """Provider ids are unique per merchant and provider only: another merchant's refund of a
    charge with the same id, or a PayPal refund of a sale with that id, is not this payment's."""
    elsewhere, paypal = _refund("elsewhere", 1000), _refund("paypal", 2000)
    elsewhere.merchant, paypal.provider = "another-merchant", "paypal"
    add_in_order(container, _payment(), elsewhere, paypal)
    with container.sessions() as session, session.begin():
        position = remainder(session, lock(session, session.scalars(select(Payment)).one()))
    assert position.committed == Money(0, "USD")


def test_a_refusal_names_the_payment(container):
    add_in_order(container, _payment(refunded=5000))
    with container.sessions() as session, session.begin():
        position = remainder(session, lock(session, session.scalars(select(Payment)).one()))
    refusal = position.refusal(Money(1, "USD"))
    assert refusal is not None and f"payment {CHARGE}" in refusal.message
