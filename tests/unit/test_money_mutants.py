"""Money's refusals say what was refused."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest

from policy.money import (
    CurrencyError,
    Money,
    exponent,
    from_decimal_string,
    from_major,
    from_provider_amount,
    is_payable,
    normalize_currency,
    provider_exponent,
    to_decimal_string,
    to_provider_amount,
)


def test_a_major_amount_finer_than_the_currency_is_refused_saying_why():
    """from_major names the value, the allowed decimals and the currency it refuses."""
    with pytest.raises(CurrencyError, match=r"^1\.234 has more than 2 decimals for USD$"):
        from_major("1.234", "USD")
    with pytest.raises(CurrencyError, match=r"^1\.5 has more than 0 decimals for JPY$"):
        from_major("1.5", "JPY")


@pytest.mark.parametrize("code", ["usd", "Usd", "USD"])
def test_a_currency_code_is_upper_cased(code):
    """normalize_currency and Money write every code in capitals."""
    assert normalize_currency(code) == "USD"
    assert Money(1, code).currency == "USD"


@pytest.mark.parametrize("code", ["US", "USDX", "", "US1", "U D", "ÄBC", "123"])
def test_anything_but_three_ascii_letters_is_refused_naming_it(code):
    """Two or four letters, digits, a space or a non-ASCII letter: refused, the code quoted."""
    with pytest.raises(CurrencyError, match=r"^not an ISO 4217 currency code: " + repr(code)):
        normalize_currency(code)


def test_a_currency_code_that_is_not_text_is_refused_as_a_currency_error():
    """A number or None as the code is a CurrencyError, not a TypeError from len()."""
    with pytest.raises(CurrencyError, match=r"^not an ISO 4217 currency code: 840$"):
        normalize_currency(840)  # type: ignore[arg-type]
    with pytest.raises(CurrencyError, match=r"^not an ISO 4217 currency code: None$"):
        normalize_currency(None)  # type: ignore[arg-type]


def test_only_iso_codes_of_money_are_payable():
    """USD and JPY are payable; ZZZ, XXX (no currency) and XTS (testing) are not."""
    assert is_payable("USD") and is_payable("JPY")
    assert not is_payable("ZZZ") and not is_payable("XXX") and not is_payable("XTS")


def test_exponents_are_iso_unless_listed_and_provider_exponents_fall_back_to_iso():
    """2 by default, 0 for JPY, 3 for KWD; a provider with no exceptions uses ISO's."""
    assert [exponent(c) for c in ("USD", "usd", "JPY", "KWD")] == [2, 2, 0, 3]
    assert provider_exponent("stripe", "isk") == 2 and exponent("ISK") == 0
    assert provider_exponent("paypal", "huf") == 0 and exponent("HUF") == 2
    assert provider_exponent("stripe", "HUF") == 2
    assert provider_exponent("adyen", "ISK") == 0 and provider_exponent("adyen", "KWD") == 3


@pytest.mark.parametrize("amount", [True, 1.0, "100", None])
def test_an_amount_that_is_not_an_int_is_refused_naming_it(amount):
    """Money takes int minor units only: a bool, float, string or None is a TypeError."""
    with pytest.raises(TypeError,
                       match=r"^Money\.amount must be int minor units, got " + repr(amount)):
        Money(amount, "USD")


def test_adding_and_subtracting_keep_the_currency_and_refuse_another_naming_both():
    """Sums and differences in minor units; mixing currencies names both codes."""
    assert Money(150, "usd") + Money(25, "USD") == Money(175, "USD")
    assert Money(150, "USD") - Money(25, "usd") == Money(125, "USD")
    with pytest.raises(CurrencyError, match=r"^cannot mix USD and EUR$"):
        Money(1, "USD") + Money(1, "EUR")
    with pytest.raises(CurrencyError, match=r"^cannot mix EUR and USD$"):
        Money(1, "EUR") - Money(1, "USD")


def test_a_percentage_rounds_half_up_unless_told_otherwise():
    """5% of 10 is 0.5: 1 by default (half up), 0 rounded down; 12.5% of 200 is exactly 25."""
    assert Money(10, "USD").percent(Decimal(5)) == Money(1, "USD")
    assert Money(10, "USD").percent(Decimal(5), ROUND_DOWN) == Money(0, "USD")
    assert Money(200, "EUR").percent(Decimal("12.5")) == Money(25, "EUR")
    assert Money(-10, "USD").percent(Decimal(5)) == Money(-1, "USD")


def test_amounts_are_shown_in_major_units_with_the_currencys_decimals():
    """12.34 USD, 1234 JPY, 1.234 KWD, 0.05 USD, -12.34 USD."""
    assert Money(1234, "USD").to_decimal() == Decimal("12.34")
    assert [str(Money(a, c)) for a, c in [(1234, "USD"), (1234, "JPY"), (1234, "KWD"),
                                          (5, "USD"), (-1234, "USD")]] == [
        "12.34 USD", "1234 JPY", "1.234 KWD", "0.05 USD", "-12.34 USD"]


def test_major_units_become_minor_units_from_text_numbers_and_decimals():
    """from_major: "12.34" USD is 1234, 7 JPY is 7, Decimal("1.5") KWD is 1500."""
    assert from_major("12.34", "usd") == Money(1234, "USD")
    assert from_major(7, "JPY") == Money(7, "JPY")
    assert from_major(Decimal("1.5"), "KWD") == Money(1500, "KWD")
    assert from_major("12.30", "USD") == Money(1230, "USD")


def test_provider_amounts_in_the_iso_exponent_pass_through():
    """Stripe USD and an unknown provider's KWD are the minor units themselves."""
    assert to_provider_amount("stripe", Money(1234, "USD")) == 1234
    assert from_provider_amount("stripe", 1234, "USD") == Money(1234, "USD")
    assert to_provider_amount("adyen", Money(1234, "KWD")) == 1234
    assert from_provider_amount("adyen", 1234, "kwd") == Money(1234, "KWD")


def test_an_amount_a_provider_cannot_express_is_refused_saying_why():
    """Each refusal names the amount, the currency and the provider."""
    with pytest.raises(CurrencyError,
                       match=r"^150\.50 HUF cannot be expressed in whole paypal units$"):
        to_provider_amount("paypal", Money(15050, "HUF"))
    with pytest.raises(CurrencyError,
                       match=r"^501 ISK from stripe has a fractional minor unit$"):
        from_provider_amount("stripe", 501, "ISK")
    with pytest.raises(CurrencyError, match=r"^12\.345 USD from paypal has too many decimals$"):
        from_decimal_string("paypal", "12.345", "USD")


def test_provider_amounts_scale_by_the_difference_of_exponents():
    """Stripe ISK carries two extra zeros (7 ISK is 700); PayPal HUF drops two (15 is 1500)."""
    assert to_provider_amount("stripe", Money(7, "ISK")) == 700
    assert from_provider_amount("stripe", 700, "ISK") == Money(7, "ISK")
    assert to_provider_amount("paypal", Money(1500, "HUF")) == 15
    assert from_provider_amount("paypal", 15, "HUF") == Money(1500, "HUF")
    assert to_decimal_string("paypal", Money(1500, "HUF")) == "15"
    assert from_decimal_string("paypal", "15", "HUF") == Money(1500, "HUF")
    assert to_decimal_string("stripe", Money(7, "ISK")) == "7.00"
    assert from_decimal_string("stripe", "7.00", "ISK") == Money(7, "ISK")
    assert to_decimal_string("paypal", Money(5, "USD")) == "0.05"
    assert from_decimal_string("paypal", "0.05", "usd") == Money(5, "USD")
