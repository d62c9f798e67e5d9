"""The PayPal client under the adapters (``adapters/paypal_client.py``), against PayPal's API
faked with `responses`: which mode a host puts it in, the credentials its token call sends, a
call sent again whole after a 401, and a redirect never followed."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
import responses

from adapters.base import ErrorCode, PaymentTarget
from adapters.paypal_adapter import PayPalAdapter
from adapters.paypal_client import PayPalClient
from policy.money import Money
from service.config import PayPalSettings
from service.errors import ProviderError

PAYPAL = "https://api-m.sandbox.paypal.com"
TOKEN = f"{PAYPAL}/v1/oauth2/token"
SALE_REFUND = f"{PAYPAL}/v1/payments/sale/SALE-CLIENT/refund"
SETTINGS = PayPalSettings(client_id="id-client", client_secret="secret-client")


def _token(access_token: str) -> None:
    responses.post(TOKEN, json={"access_token": access_token, "token_type": "Bearer",
                                "expires_in": 3600})


def _refund(adapter: PayPalAdapter) -> Any:
    return adapter.refund(PaymentTarget("paypal", "sale", "SALE-CLIENT"), Money(1250, "EUR"),
                          "003 §1.7b", "act_pp_client", {})


_REFUNDED = {"id": "RF-CLIENT", "state": "completed",
             "amount": {"total": "12.50", "currency": "EUR"}}


@pytest.mark.parametrize(("api_base", "mode"), [
    ("https://api-m.paypal.com", "live"),
    ("https://api.paypal.com", "live"),
    ("https://api-m.sandbox.paypal.com", "sandbox"),
    ("http://127.0.0.1:8111", "sandbox"),
])
def test_only_paypals_live_hosts_put_the_client_in_live_mode(api_base, mode):
    """The SDK's mode follows the configured host, and the calls go to that host."""
    client = PayPalClient(PayPalSettings(client_id="id", client_secret="secret",
                                         api_base=api_base), timeout=5)
    assert (client.mode, client.endpoint) == (mode, api_base)


@responses.activate
def test_the_token_is_asked_for_with_the_merchants_credentials_and_then_used():
    _token("A21-client")
    responses.post(SALE_REFUND, json=_REFUNDED)
    _refund(PayPalAdapter(SETTINGS))
    token_call, refund_call = responses.calls
    basic = base64.b64encode(b"id-client:secret-client").decode()
    assert token_call.request.headers["Authorization"] == f"Basic {basic}"
    assert refund_call.request.headers["Authorization"] == "Bearer A21-client"


@responses.activate
def test_after_a_401_the_call_is_sent_again_whole_under_a_fresh_token():
    """A token PayPal no longer takes: the SDK fetches another and repeats the call, with the
    same body and the same PayPal-Request-Id (without it, the repeat would be a second
    refund)."""
    _token("A21-expired")
    _token("A21-fresh")
    responses.post(SALE_REFUND, status=401, json={"error": "invalid_token"})
    responses.post(SALE_REFUND, json=_REFUNDED)
    result = _refund(PayPalAdapter(SETTINGS))
    assert (result.provider_ref, result.status) == ("RF-CLIENT", "completed")
    first, again = [c.request for c in responses.calls if c.request.url == SALE_REFUND]
    assert _body(again) == _body(first) and _body(again)["invoice_number"] == "act_pp_client"
    assert again.headers["PayPal-Request-Id"] == first.headers["PayPal-Request-Id"] == (
        "act_pp_client")
    assert (first.headers["Authorization"], again.headers["Authorization"]) == (
        "Bearer A21-expired", "Bearer A21-fresh")


def _body(request: Any) -> Any:
    return json.loads(request.body)


@responses.activate
def test_a_redirect_is_refused_not_followed():
    """A 302 (a proxy, a misconfigured host) is not followed: a refund never lands on a host
    PayPal's answer names, and the answer is a refusal, not the other host's reply."""
    _token("A21-client")
    elsewhere = "https://elsewhere.example/v1/payments/sale/SALE-CLIENT/refund"
    responses.post(SALE_REFUND, status=302, headers={"Location": elsewhere})
    responses.get(elsewhere, json=_REFUNDED)
    responses.post(elsewhere, json=_REFUNDED)
    with pytest.raises(ProviderError) as refused:
        _refund(PayPalAdapter(SETTINGS))
    assert (refused.value.code, refused.value.http_status) == (ErrorCode.INVALID_REQUEST, 302)
    assert [c.request.url for c in responses.calls] == [TOKEN, SALE_REFUND]
