"""Money's refusals say what was refused."""

from __future__ import annotations

import pytest

from policy.money import CurrencyError, from_major


def test_a_major_amount_finer_than_the_currency_is_refused_saying_why():
    """from_major names the value, the allowed decimals and the currency it refuses."""
    with pytest.raises(CurrencyError, match=r"^1\.234 has more than 2 decimals for USD$"):
        from_major("1.234", "USD")
    with pytest.raises(CurrencyError, match=r"^1\.5 has more than 0 decimals for JPY$"):
        from_major("1.5", "JPY")
