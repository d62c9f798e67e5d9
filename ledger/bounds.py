"""The one check of what a provider event may write into the ledger.

A valid signature says who sent a body, not that its values are sane: a leaked secret, a
provider bug or a test harness gone wrong can sign an amount of ``1e20``, a negative refund, a
currency that does not exist or a date in the year 9999. Every value an event writes passes
through ``check`` against its column first: whole numbers within the column (and, for money,
within what any provider takes for one payment, never negative), ISO currencies money is paid
in, times between 2000 and 2100, text that fits and is valid Unicode. A value out of range raises
``OutOfRange``; the drain then stores the event ``ignored`` with the reason and never applies it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase

from ledger.models import UTCDateTime
from policy.money import is_payable
from policy.timing import EARLIEST, LATEST
from service.errors import GatewayError

# More than any one payment either provider takes (Stripe: 8 digits of minor units, 12 for a
# few currencies; PayPal's largest transaction limits are far below): a larger one is not real.
MAX_AMOUNT = 10**12
_MONEY_COLUMNS = frozenset({"amount", "amount_refunded", "amount_due", "amount_paid"})
_INTEGER_RANGE = {BigInteger: 2**63 - 1, Integer: 2**31 - 1}


class OutOfRange(GatewayError):
    """A value an event carries that the ledger will not hold; the message names it."""


def check(model: type[DeclarativeBase], values: dict[str, Any]) -> None:
    """Raise ``OutOfRange`` naming the first value that does not fit its column of ``model``."""
    columns = model.__table__.columns
    for name, value in values.items():
        if value is None:
            continue
        problem = _problem(name, columns[name].type, value)
        if problem is not None:
            raise OutOfRange(f"{model.__tablename__}.{name} = {_shown(value)}: {problem}")


def check_text(what: str, value: str, limit: int = 255) -> str:
    """``value`` if it is non-empty valid Unicode of at most ``limit`` characters."""
    problem = _text_problem(value, limit)
    if problem is not None or not value:
        raise OutOfRange(f"{what} = {_shown(value)}: {problem or 'empty'}")
    return value


def _problem(name: str, kind: Any, value: Any) -> str | None:
    if isinstance(kind, Boolean):
        return None if isinstance(value, bool) else "not true or false"
    if isinstance(kind, (Integer, BigInteger)):
        return _integer_problem(name, kind, value)
    if isinstance(kind, UTCDateTime):
        if not isinstance(value, datetime):
            return "not a time"
        return None if EARLIEST <= value < LATEST else "not between 2000 and 2100"
    if isinstance(kind, (String, Text)):
        if not isinstance(value, str):
            return "not text"
        if name == "currency" and not is_payable(value):
            return "not an ISO 4217 currency money is paid in"
        return _text_problem(value, getattr(kind, "length", None))
    return None


def _integer_problem(name: str, kind: Any, value: Any) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool):
        return "not a whole number"
    if name in _MONEY_COLUMNS:
        return None if 0 <= value <= MAX_AMOUNT else f"not between 0 and {MAX_AMOUNT}"
    limit = next(v for k, v in _INTEGER_RANGE.items() if isinstance(kind, k))
    return None if -limit - 1 <= value <= limit else "too large for the ledger"


def _text_problem(value: str, limit: int | None) -> str | None:
    if limit is not None and len(value) > limit:
        return f"longer than {limit} characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid Unicode (a lone surrogate)"
    return None


def _shown(value: Any) -> str:
    """The value for a reason, shortened (a hostile value can be long)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
