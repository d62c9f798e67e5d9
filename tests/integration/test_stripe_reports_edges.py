"""Stripe's reporting reads at their edges (``adapters/stripe_reports.py``), against Stripe's API
faked with `responses` (and a local server that never answers): a read, which cannot move
money, is retried twice by stripe-python and then fails as ours; it never waits for ever."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
import responses

from adapters.base import ErrorCode
from adapters.stripe_reports import StripeReports
from service.config import StripeSettings
from service.errors import ProviderError

BALANCE = "https://api.stripe.com/v1/balance_transactions"
JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
_DOWN = {"error": {"type": "api_error", "message": "down"}}
_PAGE = {"object": "list", "url": "/v1/balance_transactions", "has_more": False,
         "data": [{"id": "txn_1", "object": "balance_transaction"}]}


def _reports(api_base: str = "https://api.stripe.com", timeout: float = 30.0) -> StripeReports:
    return StripeReports(StripeSettings(api_key="sk_test_reports", api_base=api_base),
                         timeout=timeout)


@responses.activate
def test_a_read_stripe_fails_twice_is_read_on_the_third_try():
    for _ in range(2):
        responses.get(BALANCE, status=500, json=_DOWN)
    responses.get(BALANCE, json=_PAGE)
    assert [t["id"] for t in _reports().balance_transactions(JAN, FEB)] == ["txn_1"]
    assert len(responses.calls) == 3


@responses.activate
def test_a_read_stripe_fails_three_times_fails_as_ours():
    """Two retries, not more: the third failure is the answer (retryable by the report's own
    caller, which is a person or a schedule)."""
    for _ in range(3):
        responses.get(BALANCE, status=500, json=_DOWN)
    responses.get(BALANCE, json=_PAGE)
    with pytest.raises(ProviderError) as raised:
        list(_reports().balance_transactions(JAN, FEB))
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.UNAVAILABLE, True)
    assert len(responses.calls) == 3


def test_stripe_that_does_not_answer_fails_the_read_within_its_timeouts(silent_server: str):
    """Each try waits the reports' timeout: three tries and two pauses, seconds in all."""
    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        list(_reports(silent_server, timeout=0.3).events(JAN, FEB))
    assert time.monotonic() - started < 10
    assert raised.value.code == ErrorCode.UNAVAILABLE
