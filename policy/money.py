"""Money: integer minor units plus an ISO 4217 code, and the per-provider currency exponents.

Pure: no I/O. Every amount in the system is a ``Money`` or an ``int`` of minor units beside an
explicit currency; percentages are computed in ``Decimal`` with a rounding mode named at the call.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Final

# ISO 4217 minor-unit exponents that differ from the usual 2.
_ISO_EXPONENT: Final[dict[str, int]] = {
    **dict.fromkeys(
        ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
         "VND", "VUV", "XAF", "XOF", "XPF"],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}

# The ISO 4217 codes of currencies money can be paid in (funds, precious metals, the testing
# code and "no currency", XXX, left out): a refund or credit in any other code is refused.
ISO_CURRENCIES: Final[frozenset[str]] = frozenset("""
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
    KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
    MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD
    TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL
""".split())

# Providers that format a currency differently from ISO. Stripe's zero-decimal list matches ISO's
# except that ISK and UGX are sent with two decimals (the last two always zero); PayPal's API
# refuses decimals for HUF, JPY and TWD although ISO gives HUF and TWD two.
_PROVIDER_EXPONENT: Final[dict[str, dict[str, int]]] = {
    "stripe": {"ISK": 2, "UGX": 2},
    "paypal": {"HUF": 0, "TWD": 0},
}


class CurrencyError(ValueError):
    """A currency code that is not three letters, or amounts in two currencies mixed."""


def normalize_currency(code: str) -> str:
    """Upper-case a currency code, refusing anything that is not three ASCII letters."""
    if not isinstance(code, str) or len(code) != 3 or not code.isascii() or not code.isalpha():
        raise CurrencyError(f"not an ISO 4217 currency code: {code!r}")
    return code.upper()


def is_payable(currency: str) -> bool:
    """True for an ISO 4217 code of a currency money can be paid in (``USD``, not ``ZZZ``)."""
    return currency in ISO_CURRENCIES


def exponent(currency: str) -> int:
    """The ISO number of decimal places of ``currency`` (2 unless listed)."""
    return _ISO_EXPONENT.get(normalize_currency(currency), 2)


def provider_exponent(provider: str, currency: str) -> int:
    """The number of decimal places ``provider`` uses for ``currency`` on its API."""
    code = normalize_currency(currency)
    return _PROVIDER_EXPONENT.get(provider, {}).get(code, exponent(code))


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units of an ISO currency (cents for USD, yen for JPY)."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError(f"Money.amount must be int minor units, got {self.amount!r}")
        object.__setattr__(self, "currency", normalize_currency(self.currency))

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyError(f"cannot mix {self.currency} and {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def percent(self, pct: Decimal, rounding: str = ROUND_HALF_UP) -> Money:
        """``pct`` per cent of this amount, rounded to a whole minor unit with ``rounding``."""
        value = (Decimal(self.amount) * pct / Decimal(100)).quantize(Decimal(1), rounding=rounding)
        return Money(int(value), self.currency)

    def to_decimal(self) -> Decimal:
        """The amount in major units (12.34 for 1234 USD cents)."""
        return Decimal(self.amount).scaleb(-exponent(self.currency))

    def __str__(self) -> str:
        return f"{self.to_decimal():.{exponent(self.currency)}f} {self.currency}"


def from_major(value: Decimal | str | int, currency: str) -> Money:
    """Major units (``"12.34"``) to Money; refuses values finer than the currency's minor unit."""
    exp = exponent(currency)
    scaled = Decimal(str(value)).scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise CurrencyError(f"{value} has more than {exp} decimals for {currency}")
    return Money(int(scaled), currency)


def to_provider_amount(provider: str, money: Money) -> int:
    """The integer a provider expects for ``money`` (Stripe's ``amount``), in its own exponent."""
    shift = provider_exponent(provider, money.currency) - exponent(money.currency)
    if shift >= 0:
        return money.amount * int(10**shift)
    whole, rest = divmod(money.amount, int(10**-shift))
    if rest:
        raise CurrencyError(f"{money} cannot be expressed in whole {provider} units")
    return whole


def from_provider_amount(provider: str, amount: int, currency: str) -> Money:
    """The inverse of ``to_provider_amount``: a provider's integer amount to our Money."""
    shift = provider_exponent(provider, currency) - exponent(currency)
    if shift >= 0:
        whole, rest = divmod(amount, 10**shift)
        if rest:
            raise CurrencyError(f"{amount} {currency} from {provider} has a fractional minor unit")
        return Money(whole, currency)
    return Money(amount * 10**-shift, currency)


def to_decimal_string(provider: str, money: Money) -> str:
    """A provider's decimal-string amount (PayPal's ``"12.34"``, ``"1000"`` for JPY)."""
    exp = provider_exponent(provider, money.currency)
    value = Decimal(to_provider_amount(provider, money)).scaleb(-exp)
    return f"{value:.{exp}f}"


def from_decimal_string(provider: str, value: str, currency: str) -> Money:
    """Parse a provider's decimal-string amount into Money, refusing sub-unit precision."""
    exp = provider_exponent(provider, currency)
    scaled = Decimal(value).scaleb(exp)
    if scaled != scaled.to_integral_value():
        raise CurrencyError(f"{value} {currency} from {provider} has too many decimals")
    return from_provider_amount(provider, int(scaled), currency)
