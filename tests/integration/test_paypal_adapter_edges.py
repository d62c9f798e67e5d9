"""The PayPal adapter at its edges, against PayPal's API faked with `responses`: what a v1 sale
refund and a v2 capture refund answer becomes, and how each HTTP failure is translated (rate
limits and server errors retried; credentials, and anything PayPal names, not)."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests
import responses

from adapters.base import ErrorCode, PaymentTarget
from adapters.paypal_adapter import PayPalAdapter
from policy.money import Money
from service.config import PayPalSettings
from service.errors import ProviderError

PAYPAL = "https://api-m.sandbox.paypal.com"
SALE_REFUND = f"{PAYPAL}/v1/payments/sale/SALE-EDGES/refund"
CAPTURE_REFUND = f"{PAYPAL}/v2/payments/captures/CAP-EDGES/refund"


def _adapter() -> PayPalAdapter:
    responses.post(f"{PAYPAL}/v1/oauth2/token", json={
        "access_token": "A21-edges", "token_type": "Bearer", "expires_in": 3600})
    return PayPalAdapter(PayPalSettings(client_id="id-edges", client_secret="secret-edges"))


EUROS = Money(1250, "EUR")


def _refund_sale(adapter: PayPalAdapter, amount: Money = EUROS) -> Any:
    return adapter.refund(PaymentTarget("paypal", "sale", "SALE-EDGES"), amount,
                          "003 §1.7b", "act_pp_edges", {})


@responses.activate
@pytest.mark.parametrize(("kind", "url", "answer", "amount", "raw"), [
    ("sale", SALE_REFUND, {"id": "RF-1", "state": "completed",
                           "amount": {"total": "12.50", "currency": "EUR"}},
     Money(1250, "EUR"), "completed"),
    ("capture", CAPTURE_REFUND, {"id": "RF-1", "status": "COMPLETED",
                                 "amount": {"value": "1000", "currency_code": "JPY"}},
     Money(1000, "JPY"), "COMPLETED"),
])
def test_a_refund_answer_keeps_its_status_amount_and_currency(kind, url, answer, amount, raw):
    """A v1 sale refund (``state``, ``total``, ``currency``) and a v2 capture refund
    (``status``, ``value``, ``currency_code``)."""
    adapter = _adapter()
    responses.post(url, json=answer)
    target_id = "SALE-EDGES" if kind == "sale" else "CAP-EDGES"
    result = adapter.refund(PaymentTarget("paypal", kind, target_id), amount, "003 §1.7b",
                            "act_pp_edges", {})
    assert (result.provider_ref, result.status, result.raw_status) == ("RF-1", raw.lower(),
                                                                       raw)
    assert result.amount == amount


@responses.activate
def test_an_answer_in_whole_forints_is_read_in_paypals_exponent():
    """PayPal writes HUF in whole units (ISO has two decimals): "1200" is 120000 minor units."""
    adapter = _adapter()
    responses.post(SALE_REFUND, json={"id": "RF-4", "state": "completed",
                                      "amount": {"total": "1200", "currency": "HUF"}})
    result = _refund_sale(adapter, Money(120000, "HUF"))
    assert result.amount == Money(120000, "HUF")
    body: Any = responses.calls[-1].request.body
    assert '"total": "1200"' in (body.decode() if isinstance(body, bytes) else str(body))


@responses.activate
def test_an_answer_without_a_state_or_currency_is_pending_in_the_refunds_currency():
    adapter = _adapter()
    responses.post(SALE_REFUND, json={"id": "RF-3", "amount": {"total": "12.50"}})
    result = _refund_sale(adapter)
    assert (result.status, result.raw_status) == ("pending", "pending")
    assert result.amount == Money(1250, "EUR")


def _failing(status: int, body: Any) -> None:
    if isinstance(body, str):
        responses.post(SALE_REFUND, status=status, body=body)
    else:
        responses.post(SALE_REFUND, status=status, json=body)


@responses.activate
@pytest.mark.parametrize(("status", "code", "retryable", "message"), [
    (429, ErrorCode.RATE_LIMITED, True, "paypal: rate limited"),
    (500, ErrorCode.UNAVAILABLE, True, "paypal: HTTP 500"),
    (503, ErrorCode.UNAVAILABLE, True, "paypal: HTTP 503"),
    (401, ErrorCode.AUTHENTICATION, False, "paypal: HTTP 401"),
    (403, ErrorCode.AUTHENTICATION, False, "paypal: HTTP 403"),
])
def test_http_failures_are_translated_by_status(status, code, retryable, message):
    adapter = _adapter()
    _failing(status, {"name": "SOMETHING", "message": "whatever PayPal says"})
    with pytest.raises(ProviderError) as raised:
        _refund_sale(adapter)
    error = raised.value
    assert (error.code, error.retryable, error.http_status, error.provider) == (
        code, retryable, status, "paypal")
    assert str(error) == message


@responses.activate
@pytest.mark.parametrize(("status", "body", "code", "message"), [
    (422, {"name": "UNPROCESSABLE_ENTITY", "message": "The requested action could not be done.",
           "details": [{"issue": "REFUND_AMOUNT_EXCEEDED"}], "debug_id": "dbg-1"},
     ErrorCode.AMOUNT_TOO_LARGE,
     "paypal: UNPROCESSABLE_ENTITY / REFUND_AMOUNT_EXCEEDED: The requested action could not "
     "be done."),
    (402, {"name": "TRANSACTION_REFUSED", "message": "Refused."}, ErrorCode.TRANSACTION_REFUSED,
     "paypal: TRANSACTION_REFUSED: Refused."),
    (400, {"details": [{"issue": "SOMETHING_NEW"}]}, ErrorCode.INVALID_REQUEST,
     "paypal: SOMETHING_NEW:"),
    (499, "not json at all", ErrorCode.INVALID_REQUEST, "paypal: :"),
    (400, '["a", "list"]', ErrorCode.INVALID_REQUEST, "paypal: :"),
    (422, '["a", "list"]', ErrorCode.INVALID_REQUEST, "paypal: :"),
])
def test_a_named_failure_is_translated_by_its_name(status, body, code, message):
    """Below 500 (but 401, 403 and 429) the body's name or issue decides: an issue we do not
    map, or a body that is not a JSON object, is an invalid request, never retried."""
    adapter = _adapter()
    _failing(status, body)
    with pytest.raises(ProviderError) as raised:
        _refund_sale(adapter)
    error = raised.value
    assert (error.code, error.retryable, error.http_status) == (code, False, status)
    assert str(error) == message


@responses.activate
def test_a_401_gets_one_fresh_token_not_a_post_after_post():
    """The SDK drops its token on a 401 and calls again, and did so on every 401 until
    Python's recursion limit: now the call is posted twice (the second time with a fresh
    token) and then fails as an authentication error, which no retry of ours repeats."""
    adapter = _adapter()
    _failing(401, {"name": "AUTHENTICATION_FAILURE", "message": "no"})
    with pytest.raises(ProviderError) as raised:
        _refund_sale(adapter)
    assert raised.value.code == ErrorCode.AUTHENTICATION and not raised.value.retryable
    posts = [c for c in responses.calls if c.request.url == SALE_REFUND]
    tokens = [c for c in responses.calls if "oauth2/token" in (c.request.url or "")]
    assert (len(posts), len(tokens)) == (2, 2)


# --- what an answer's fields become ------------------------------------------------------------


@responses.activate
@pytest.mark.parametrize(("kind", "url", "amount"), [
    ("sale", SALE_REFUND, {"total": "12.50", "currency": "USD"}),
    ("capture", CAPTURE_REFUND, {"value": "12.50", "currency_code": "USD"})])
def test_the_refunds_currency_is_the_one_paypal_answers_with(kind, url, amount):
    """The answer's currency (v1 ``currency``, v2 ``currency_code``) is recorded, not the one
    asked for: the ledger keeps what PayPal says it refunded."""
    adapter = _adapter()
    responses.post(url, json={"id": "RF-5", "state": "completed", "amount": amount})
    result = adapter.refund(PaymentTarget("paypal", kind, url.split("/")[-2]), EUROS,
                            "003 §1.7b", "act_pp_edges", {})
    assert result.amount == Money(1250, "USD")


@responses.activate
def test_an_answer_in_forints_with_decimals_is_refused_in_paypals_exponent():
    """PayPal has no forint decimals: "12.50" HUF is not an amount PayPal writes, and is not
    read as 1250 minor units (ISO's exponent) either."""
    adapter = _adapter()
    responses.post(SALE_REFUND, json={"id": "RF-6", "state": "completed",
                                      "amount": {"total": "12.50", "currency": "HUF"}})
    with pytest.raises(ValueError, match="12.50 HUF from paypal has too many decimals"):
        _refund_sale(adapter, Money(120000, "HUF"))


@responses.activate
@pytest.mark.parametrize("answer", [
    {"id": "RF-7", "state": "completed", "amount": {"total": "12.50", "currency": "EUR"}},
    {"id": "RF-7", "state": "completed", "amount": {"total": "12.50", "currency": "EUR"},
     "status_details": {}},
    {"id": "RF-7", "state": "pending", "amount": {"total": "12.50", "currency": "EUR"},
     "status_details": "not an object"}])
def test_an_answer_without_a_reason_has_none(answer):
    adapter = _adapter()
    responses.post(SALE_REFUND, json=answer)
    assert _refund_sale(adapter).failure_reason is None


# --- errors: what an operator is told ----------------------------------------------------------


@responses.activate
def test_a_network_failure_is_retryable_and_names_what_failed():
    """PayPal not reached (refused, reset): the attempt may be repeated, under the same
    PayPal-Request-Id."""
    adapter = _adapter()
    responses.post(SALE_REFUND, body=requests.ConnectionError("connection refused"))
    with pytest.raises(ProviderError) as raised:
        _refund_sale(adapter)
    error = raised.value
    assert (error.provider, error.code, error.retryable) == ("paypal", ErrorCode.UNAVAILABLE,
                                                             True)
    assert str(error) == "paypal: ConnectionError: connection refused"


@responses.activate
def test_a_named_failure_keeps_paypals_debug_id_and_names_an_issue_without_a_name():
    """The debug_id is what PayPal's support asks for; a detail with no issue adds nothing to
    the message."""
    adapter = _adapter()
    _failing(422, {"name": "UNPROCESSABLE_ENTITY", "message": "No.", "debug_id": "dbg-42",
                   "details": [{"description": "no issue named"},
                               {"issue": "REFUND_AMOUNT_EXCEEDED"}]})
    with pytest.raises(ProviderError) as raised:
        _refund_sale(adapter)
    error = raised.value
    assert (error.code, error.request_id) == (ErrorCode.AMOUNT_TOO_LARGE, "dbg-42")
    assert str(error) == "paypal: UNPROCESSABLE_ENTITY / REFUND_AMOUNT_EXCEEDED: No."


def test_paypal_that_does_not_answer_fails_the_refund_within_the_timeout(silent_server):
    """The adapter's timeout reaches the HTTP client: a hung PayPal fails the attempt
    (retryable, the same PayPal-Request-Id next time) instead of holding a worker for ever."""
    adapter = PayPalAdapter(PayPalSettings(client_id="id", client_secret="secret",
                                           api_base=silent_server), timeout=0.5)
    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        _refund_sale(adapter)
    assert time.monotonic() - started < 5
    assert raised.value.code == ErrorCode.UNAVAILABLE and raised.value.retryable


SUBSCRIPTION = f"{PAYPAL}/v1/billing/subscriptions/I-EDGES"
_STATUS_INVALID = {"name": "UNPROCESSABLE_ENTITY", "message": "No.",
                   "details": [{"issue": "SUBSCRIPTION_STATUS_INVALID"}]}


@responses.activate
@pytest.mark.parametrize(("shown", "raw_status"), [
    ("CANCELLED", "already_cancelled"), ("EXPIRED", "already_expired"),
    ("APPROVED", None), ("APPROVAL_PENDING", None), ("", None)])
def test_a_cancellation_paypal_refuses_is_done_only_if_the_subscription_has_ended(shown,
                                                                                  raw_status):
    adapter = _adapter()
    responses.post(f"{SUBSCRIPTION}/cancel", status=422, json=_STATUS_INVALID)
    responses.get(SUBSCRIPTION, json={"id": "I-EDGES", "status": shown})
    if raw_status is None:
        with pytest.raises(ProviderError) as raised:
            adapter.cancel_subscription("I-EDGES", None, "003 §1.4", "act_edges")
        assert (raised.value.code, raised.value.http_status) == (ErrorCode.INVALID_REQUEST, 422)
        assert not raised.value.retryable
    else:
        result = adapter.cancel_subscription("I-EDGES", None, "003 §1.4", "act_edges")
        assert (result.status, result.raw_status) == ("succeeded", raw_status)


@responses.activate
@pytest.mark.parametrize(("status", "shown"), [
    (200, {"id": "I-EDGES", "status": "ACTIVE"}), (200, {"id": "I-EDGES", "status": "SUSPENDED"}),
    (503, {"name": "SERVICE_UNAVAILABLE"})], ids=["active", "suspended", "unreadable"])
def test_a_refused_cancellation_the_read_cannot_settle_is_tried_again(status, shown):
    """PayPal shows the subscription cancellable after all (its status changing under the
    call), or does not answer the read: neither done nor a refusal for review."""
    adapter = _adapter()
    responses.post(f"{SUBSCRIPTION}/cancel", status=422, json=_STATUS_INVALID)
    responses.get(SUBSCRIPTION, status=status, json=shown)
    with pytest.raises(ProviderError) as raised:
        adapter.cancel_subscription("I-EDGES", None, "003 §1.4", "act_edges")
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.UNAVAILABLE, True)


@responses.activate
def test_a_cancellation_refused_for_another_reason_is_not_read_back():
    """PayPal's issue names decide, not the words of its message."""
    adapter = _adapter()
    responses.post(f"{SUBSCRIPTION}/cancel", status=422, json={
        "name": "UNPROCESSABLE_ENTITY", "message": "not SUBSCRIPTION_STATUS_INVALID",
        "details": [{"issue": "USER_ACCOUNT_CLOSED"}]})
    with pytest.raises(ProviderError) as raised:
        adapter.cancel_subscription("I-EDGES", None, "003 §1.4", "act_edges")
    assert (raised.value.code, raised.value.retryable) == (ErrorCode.INVALID_REQUEST, False)
    assert raised.value.names == ("UNPROCESSABLE_ENTITY", "USER_ACCOUNT_CLOSED")
    assert len(responses.calls) == 2  # the token and the cancel: nothing read back
