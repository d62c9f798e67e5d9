"""PayPal verification by PayPal's API: how each answer of the verify endpoint is read, what the
refusal says, and that the calls wait no longer than configured and follow no redirect."""

from __future__ import annotations

import pytest
import requests
import responses

from gateway.signatures.paypal_api import PayPalApiVerifier
from sandbox.devcerts import DevPayPalSigner
from service.errors import VerificationError
from tests.support.paypal import (
    REFUND_EVENT,
    TOKEN_URL,
    VERIFY_URL,
    WEBHOOK_ID,
    RecordingSession,
    fake_paypal,
    sandbox_api_verifier,
)

ELSEWHERE = "https://verify.example.com/v1/notifications/verify-webhook-signature"


def refusal(verifier: PayPalApiVerifier, signer: DevPayPalSigner) -> tuple[str, str]:
    """Verify a correctly signed refund event that must be refused: (code, message)."""
    with pytest.raises(VerificationError) as caught:
        verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    return caught.value.code, caught.value.message


@pytest.mark.parametrize("status", [400, 404, 422])
def test_a_request_paypal_refuses_is_a_bad_signature_naming_the_status(signer, rsps,
                                                                      api_verifier, status):
    """A 4xx that PayPal would answer again refuses the delivery, and says which status."""
    fake_paypal(rsps, status)
    assert refusal(api_verifier, signer) == (
        "bad_signature", f"PayPal refused the verification request (HTTP {status})")


@pytest.mark.parametrize("status", [403, 408, 429])
def test_a_4xx_that_a_retry_can_cure_is_an_outage(signer, rsps, api_verifier, status):
    """Forbidden (our account's permissions), timed out, throttled: PayPal may answer otherwise
    later, so the delivery is not refused for good but retried."""
    fake_paypal(rsps, status)
    assert refusal(api_verifier, signer) == (
        "verification_unavailable", f"PayPal answered HTTP {status}")


@pytest.mark.parametrize("status", [201, 299])
def test_any_2xx_answer_carries_the_verdict(signer, rsps, api_verifier, status):
    """The verdict in a 2xx answer other than 200 is read like that of a 200."""
    fake_paypal(rsps)
    rsps.post(VERIFY_URL, status=status, json={"verification_status": "SUCCESS"})
    api_verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)


@pytest.mark.parametrize("status", [300, 302, 500])
def test_an_answer_outside_2xx_is_an_outage_whatever_verdict_it_holds(signer, rsps,
                                                                      api_verifier, status):
    """A SUCCESS in the body of a non-2xx answer is not PayPal's verdict."""
    fake_paypal(rsps)
    rsps.post(VERIFY_URL, status=status, json={"verification_status": "SUCCESS"})
    assert refusal(api_verifier, signer) == (
        "verification_unavailable", f"PayPal answered HTTP {status}")


def test_a_redirect_from_the_verify_endpoint_is_not_followed(signer, rsps, api_verifier):
    """Only PayPal's own answer counts: a redirect elsewhere is an outage, never asked."""
    fake_paypal(rsps)
    rsps.post(VERIFY_URL, status=307, headers={"Location": ELSEWHERE})
    rsps.post(ELSEWHERE, json={"verification_status": "SUCCESS"})
    assert refusal(api_verifier, signer) == ("verification_unavailable", "PayPal answered HTTP 307")
    assert [call.request.url for call in rsps.calls] == [TOKEN_URL, VERIFY_URL]
    rsps.remove(responses.POST, ELSEWHERE)  # registered to be refused, so never called


@pytest.mark.parametrize("answer", [{"json": {"name": "OK"}}, {"json": ["SUCCESS"]},
                                    {"body": "<html>verified</html>"}],
                         ids=["no verification_status", "a list", "not JSON"])
def test_a_200_without_a_verdict_is_an_outage(signer, rsps, api_verifier, answer):
    """An answer that does not say SUCCESS or FAILURE decides nothing: retry later."""
    fake_paypal(rsps)
    rsps.post(VERIFY_URL, **answer)
    assert refusal(api_verifier, signer) == (
        "verification_unavailable", "PayPal's answer has no verification_status")


def test_the_token_and_verify_calls_use_the_configured_timeout(signer, rsps):
    """A hung PayPal cannot hold a web worker longer than the timeout, at either call."""
    session = RecordingSession()
    fake_paypal(rsps, "SUCCESS")
    verifier = sandbox_api_verifier(session=session)
    verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    assert session.timeouts == [(TOKEN_URL, 2.0), (VERIFY_URL, 2.0)]


def test_a_token_refused_twice_is_an_outage_after_one_renewal(signer, rsps, api_verifier):
    """PayPal refusing a fresh token as well is our configuration's fault, not the sender's:
    retry later, and say so."""
    fake_paypal(rsps, 401)
    fake_paypal(rsps, 401, token="second")
    assert refusal(api_verifier, signer) == (
        "verification_unavailable", "PayPal refused our access token twice")
    assert [call.request.url for call in rsps.calls] == [TOKEN_URL, VERIFY_URL] * 2


@pytest.mark.parametrize(("answer", "why"), [
    ({"status": 401, "json": {"error": "invalid_client"}}, "UnauthorizedAccess"),
    ({"body": requests.ConnectTimeout("slow")}, "ConnectTimeout"),
], ids=["credentials refused", "unreachable"])
def test_a_token_that_cannot_be_had_is_an_outage_saying_why(signer, rsps, api_verifier, answer,
                                                            why):
    """The operator reads what went wrong with the token (never the credentials) in the answer."""
    rsps.post(TOKEN_URL, **answer)
    assert refusal(api_verifier, signer) == (
        "verification_unavailable", f"could not get a PayPal access token: {why}")


def test_the_verify_request_is_json_asking_for_json_with_our_token(signer, rsps, api_verifier):
    """PayPal is sent JSON and asked for JSON, authorised by the OAuth token it issued (media
    types compared as HTTP does, without regard to case)."""
    fake_paypal(rsps, "SUCCESS")
    api_verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    sent = rsps.calls[1].request.headers
    assert sent["Authorization"] == "Bearer A21AAF-token"
    assert sent["Content-Type"].lower() == "application/json"
    assert sent["Accept"].lower() == "application/json"


def test_paypal_out_of_reach_is_an_outage_naming_the_error(signer, rsps, api_verifier):
    """A connection failure is retried later, and the answer says what failed."""
    fake_paypal(rsps)
    rsps.post(VERIFY_URL, body=requests.ConnectionError("reset"))
    assert refusal(api_verifier, signer) == (
        "verification_unavailable", "could not reach PayPal: ConnectionError")
