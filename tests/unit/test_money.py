"""Money in minor units, and each provider's way of writing it."""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

import pytest

from policy.money import (
    CurrencyError,
    Money,
    from_decimal_string,
    from_provider_amount,
    to_decimal_string,
    to_provider_amount,
)


@pytest.mark.parametrize(("money", "stripe", "paypal"), [
    (Money(1234, "USD"), 1234, "12.34"),
    (Money(1000, "JPY"), 1000, "1000"),       # zero-decimal for both
    (Money(150000, "HUF"), 150000, "1500"),   # PayPal takes whole forints
    (Money(5, "ISK"), 500, "5"),              # Stripe writes ISK with two (zero) decimals
    (Money(1234, "KWD"), 1234, "1.234"),      # three decimals
])
def test_each_provider_writes_an_amount_its_own_way(money, stripe, paypal):
    """Stripe integers and PayPal decimal strings round-trip to the same minor units."""
    assert to_provider_amount("stripe", money) == stripe
    assert from_provider_amount("stripe", stripe, money.currency) == money
    assert to_decimal_string("paypal", money) == paypal
    assert from_decimal_string("paypal", paypal, money.currency) == money


def test_an_amount_a_provider_cannot_express_is_refused_not_rounded():
    """150.50 HUF cannot be sent to PayPal, which takes whole forints."""
    with pytest.raises(CurrencyError):
        to_decimal_string("paypal", Money(15050, "HUF"))
    with pytest.raises(CurrencyError):
        from_decimal_string("paypal", "12.345", "USD")


def test_percentages_round_with_the_mode_named_at_the_call():
    """5% of 999 JPY is 49.95: 49 rounded down, 50 half-up."""
    assert Money(999, "JPY").percent(Decimal(5), ROUND_DOWN) == Money(49, "JPY")
    assert Money(999, "JPY").percent(Decimal(5), ROUND_HALF_UP) == Money(50, "JPY")


def test_mixing_currencies_is_an_error():
    """Adding USD to EUR is refused."""
    with pytest.raises(CurrencyError):
        Money(1, "USD") + Money(1, "EUR")
