"""The Stripe adapter at its edges, against Stripe's API faked with `responses` (and a local
server that never answers): what a refund answer becomes, how each Stripe error is translated,
that stripe-python never retries by itself (our executor retries, always under the same key)
and that a provider that does not answer fails within the adapter's timeout."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
import responses

from adapters.base import ErrorCode, PaymentTarget
from adapters.stripe_adapter import StripeAdapter
from policy.money import Money
from service.config import StripeSettings
from service.errors import ProviderError

REFUNDS = "https://api.stripe.com/v1/refunds"
CHARGE = PaymentTarget("stripe", "charge", "ch_edges")


def _adapter(**kw: Any) -> StripeAdapter:
    return StripeAdapter(StripeSettings(api_key="sk_test_edges"), **kw)


def _refund(adapter: StripeAdapter) -> Any:
    return adapter.refund(CHARGE, Money(1500, "USD"), "003 §1.1a", "act_edges", {})


@responses.activate
def test_a_refund_answer_keeps_its_status_amount_and_currency():
    responses.post(REFUNDS, json={"id": "re_1", "object": "refund", "status": "succeeded",
                                  "amount": 1500, "currency": "usd", "charge": "ch_edges"})
    result = _refund(_adapter())
    assert (result.provider_ref, result.status, result.raw_status) == ("re_1", "succeeded",
                                                                        "succeeded")
    assert result.amount == Money(1500, "USD")


@responses.activate
def test_a_refund_without_a_status_is_pending():
    """Stripe may answer a refund whose status is not known yet: it is pending, never done."""
    responses.post(REFUNDS, json={"id": "re_2", "object": "refund", "status": None,
                                  "amount": 1500, "currency": "usd"})
    result = _refund(_adapter())
    assert (result.status, result.raw_status) == ("pending", "pending")


def _error(status: int, code: str | None, message: str, kind: str = "invalid_request_error"
           ) -> None:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code is not None:
        error["code"] = code
    responses.post(REFUNDS, status=status, json={"error": error},
                   headers={"Request-Id": "req_edges_1"})


@responses.activate
@pytest.mark.parametrize(("code", "expected"), [
    ("charge_already_refunded", ErrorCode.ALREADY_REFUNDED),
    ("amount_too_large", ErrorCode.AMOUNT_TOO_LARGE),
    ("charge_disputed", ErrorCode.DISPUTED),
    ("some_code_stripe_adds_later", ErrorCode.INVALID_REQUEST),
    (None, ErrorCode.INVALID_REQUEST),
])
def test_an_invalid_request_is_translated_with_what_an_operator_needs(code, expected):
    """The error names the provider, Stripe's request id and HTTP status, and Stripe's own
    message; a code we do not map is an invalid request, which no retry can fix."""
    _error(400, code, "Charge ch_edges has already been refunded.")
    with pytest.raises(ProviderError) as raised:
        _refund(_adapter())
    error = raised.value
    assert error.code == expected and error.retryable is False
    assert (error.provider, error.request_id, error.http_status) == ("stripe", "req_edges_1",
                                                                     400)
    assert str(error) == "stripe: Charge ch_edges has already been refunded."  # Stripe's words


@responses.activate
def test_any_other_stripe_error_is_an_invalid_request_not_a_retry():
    """An error of a kind the adapter does not name (a card error on a refund) fails the
    attempt for good: retrying cannot fix it."""
    _error(402, "card_declined", "Your card was declined.", kind="card_error")
    with pytest.raises(ProviderError) as raised:
        _refund(_adapter())
    assert raised.value.code == ErrorCode.INVALID_REQUEST and raised.value.retryable is False


@responses.activate
def test_a_stripe_server_error_is_retryable_and_stripe_python_does_not_retry_it_itself():
    """One POST per attempt: stripe-python's own retries are off, so every retry is ours and
    carries the action's idempotency key."""
    _error(500, None, "An unknown error occurred", kind="api_error")
    with pytest.raises(ProviderError) as raised:
        _refund(_adapter())
    assert raised.value.code == ErrorCode.UNAVAILABLE and raised.value.retryable
    assert len(responses.calls) == 1
    assert responses.calls[0].request.headers["Idempotency-Key"] == "act_edges"


def test_a_provider_that_does_not_answer_fails_within_the_timeout(silent_server):
    """The adapter's timeout reaches the HTTP client: a hung Stripe fails the attempt
    (retryable, the same key next time) instead of holding a worker for ever."""
    adapter = StripeAdapter(StripeSettings(api_key="sk_test_edges", api_base=silent_server),
                            timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        _refund(adapter)
    assert time.monotonic() - started < 5
    assert raised.value.code == ErrorCode.UNAVAILABLE and raised.value.retryable


SUBSCRIPTION = "https://api.stripe.com/v1/subscriptions/sub_edges"


@responses.activate
@pytest.mark.parametrize(("method", "status", "code", "expected"), [
    (responses.DELETE, 404, "resource_missing", ErrorCode.NOT_FOUND),
    (responses.POST, 400, None, ErrorCode.INVALID_REQUEST)], ids=["now", "at a date"])
@pytest.mark.parametrize("shown", [(404, {"error": {"type": "invalid_request_error",
                                                    "code": "resource_missing",
                                                    "message": "No such subscription"}}),
                                   (200, {"id": "sub_edges", "object": "subscription",
                                          "status": "past_due"})],
                         ids=["unknown to Stripe", "not cancelled"])
def test_a_cancellation_refused_for_a_subscription_not_cancelled_is_refused(method, status, code,
                                                                          expected, shown):
    """Refused, and Stripe does not show the subscription cancelled (it does not know it, or it
    is live): the refusal stands, never a cancellation that did not happen."""
    error: dict[str, Any] = {"type": "invalid_request_error", "message": "refused"}
    if code is not None:
        error["code"] = code
    responses.add(method, SUBSCRIPTION, status=status, json={"error": error})
    responses.get(SUBSCRIPTION, status=shown[0], json=shown[1])
    at = None if method == responses.DELETE else datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(ProviderError) as refused:
        _adapter().cancel_subscription("sub_edges", at, "003 §1.4", "act_edges")
    assert (refused.value.code, str(refused.value)) == (expected, "stripe: refused")
    assert [c.request.method for c in responses.calls] == [method, "GET"]


@responses.activate
def test_a_cancellation_stripe_could_not_answer_is_not_looked_up():
    """A 5xx may have cancelled it or not: the retry (same key) learns which, not a read."""
    responses.delete(SUBSCRIPTION, status=500,
                     json={"error": {"type": "api_error", "message": "down"}})
    with pytest.raises(ProviderError) as refused:
        _adapter().cancel_subscription("sub_edges", None, "003 §1.4", "act_edges")
    assert (refused.value.code, refused.value.retryable) == (ErrorCode.UNAVAILABLE, True)
    assert len(responses.calls) == 1


@responses.activate
@pytest.mark.parametrize("shown", ["canceled", "incomplete_expired"])
def test_a_cancellation_refused_for_a_subscription_that_has_ended_is_done(shown):
    """Cancelled already, or expired before its first payment: it never bills again."""
    responses.delete(SUBSCRIPTION, status=404, json={"error": {
        "type": "invalid_request_error", "code": "resource_missing",
        "message": "No such subscription: 'sub_edges'"}})
    responses.get(SUBSCRIPTION, json={"id": "sub_edges", "object": "subscription",
                                      "status": shown})
    result = _adapter().cancel_subscription("sub_edges", None, "003 §1.4", "act_edges")
    assert (result.status, result.raw_status) == ("succeeded", "already_canceled")


@responses.activate
def test_a_confirming_read_stripe_could_not_answer_leaves_the_cancellation_to_retry():
    """The cancel is "No such subscription" (cancelled already, say by the attempt whose answer
    was lost) and the read that would confirm it meets a 503: the attempt is retried, not
    refused and sent to review."""
    responses.delete(SUBSCRIPTION, status=404, json={"error": {
        "type": "invalid_request_error", "code": "resource_missing",
        "message": "No such subscription: 'sub_edges'"}})
    responses.get(SUBSCRIPTION, status=503, json={"error": {"type": "api_error",
                                                            "message": "down"}})
    with pytest.raises(ProviderError) as raised:
        _adapter().cancel_subscription("sub_edges", None, "003 §1.4", "act_edges")
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.UNAVAILABLE, True)


@responses.activate
def test_cancelling_now_sends_no_idempotency_key():
    """Stripe: a key has no effect on a DELETE. None is sent, so no reader takes the cancel
    for an idempotent one; its retry is made safe by the read after a refusal instead."""
    responses.delete(SUBSCRIPTION, json={"id": "sub_edges", "object": "subscription",
                                         "status": "canceled"})
    result = _adapter().cancel_subscription("sub_edges", None, "003 §1.4", "act_edges")
    assert (result.status, result.raw_status) == ("succeeded", "canceled")
    assert "Idempotency-Key" not in responses.calls[0].request.headers
