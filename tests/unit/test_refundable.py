"""What a payment's refund position says when it refuses a refund: the words support and the
review queue read, pinned (``ledger.refundable.Remainder``; no database needed)."""

from __future__ import annotations

from ledger.models import Dispute
from ledger.refundable import Refusal, Remainder
from policy.money import Money


def _position(captured: int = 12000, committed: int = 0, dispute: Dispute | None = None
              ) -> Remainder:
    return Remainder("ch_1", Money(captured, "USD"), Money(committed, "USD"), dispute)


def _dispute(state: str, status: str) -> Dispute:
    return Dispute(provider_id="dp_1", state=state, status=status)


def test_an_open_dispute_refuses_every_refund_saying_why():
    """Open: code disputed, naming the dispute, the payment and the provider's status."""
    refusal = _position(dispute=_dispute("open", "needs_response")).refusal(Money(1, "USD"))
    assert refusal == Refusal("disputed", "dispute dp_1 on payment ch_1 is open "
                              "(needs_response): the money goes back through the dispute, not "
                              "a refund")


def test_a_lost_dispute_says_the_money_already_went_back():
    """Lost: the same code, worded as lost."""
    refusal = _position(dispute=_dispute("lost", "lost")).refusal(Money(1, "USD"))
    assert refusal is not None and refusal.code == "disputed"
    assert str(refusal) == ("dispute dp_1 on payment ch_1 was lost (lost): the money goes back "
                            "through the dispute, not a refund")


def test_a_refund_above_what_is_left_names_the_three_figures():
    """120.00 captured, 100.00 committed: 20.01 is refused, naming what is left."""
    refusal = _position(committed=10000).refusal(Money(2001, "USD"))
    assert refusal == Refusal("exceeds_remainder", "20.01 USD is more than is left to refund of "
                              "payment ch_1: 20.00 USD of 120.00 USD (100.00 USD refunded, in "
                              "flight or pending)")
    assert _position(committed=10000).refusal(Money(2000, "USD")) is None


def test_a_refund_in_another_currency_is_refused():
    """The payment's currency only."""
    assert _position().refusal(Money(100, "EUR")) == Refusal(
        "currency_mismatch", "payment ch_1 is in USD, not EUR")


def test_what_is_left_is_never_negative():
    """More committed than captured (a provider's own over-refund) leaves zero, not less."""
    assert _position(committed=13000).left == Money(0, "USD")
