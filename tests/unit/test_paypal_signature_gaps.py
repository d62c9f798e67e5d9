"""PayPal verification at its edges: every byte of the body is signed, and a certificate must
name a host under paypal.com, not merely end in the letters "paypal.com"."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import responses

from gateway.signatures.paypal import PayPalVerifier
from sandbox.devcerts import DevPayPalSigner, make_signer
from service.errors import VerificationError
from tests.support.paypal import REFUND_EVENT, WEBHOOK_ID, serve_cert, shared_signer

ADDED_AFTER_SIGNING: dict[str, Callable[[bytes], bytes]] = {
    "trailing newline": lambda body: body + b"\n",
    "trailing CRLF": lambda body: body + b"\r\n",
    "leading space": lambda body: b" " + body,
    "leading newline": lambda body: b"\n" + body,
}


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def refused(signer: DevPayPalSigner, headers: dict[str, str], body: bytes) -> str:
    """Verify against the signer's own CA, as the gateway trusts it; return the refusal code."""
    with pytest.raises(VerificationError) as caught:
        PayPalVerifier(signer.ca_pem).verify(headers, body, WEBHOOK_ID)
    return caught.value.code


@pytest.mark.parametrize("edit", ADDED_AFTER_SIGNING.values(), ids=ADDED_AFTER_SIGNING.keys())
def test_whitespace_added_around_a_signed_body_breaks_the_signature(rsps, edit):
    """The body as signed verifies; with whitespace added before or after it, it does not."""
    signer = shared_signer()
    serve_cert(rsps, signer)
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    PayPalVerifier(signer.ca_pem).verify(headers, REFUND_EVENT, WEBHOOK_ID)
    assert refused(signer, headers, edit(REFUND_EVENT)) == "bad_signature"


def test_a_body_signed_with_a_trailing_newline_is_refused_without_it(rsps):
    """The newline PayPal signed is part of the body: the same JSON without it is refused."""
    signer = shared_signer()
    serve_cert(rsps, signer)
    signed = REFUND_EVENT + b"\n"
    headers = signer.headers(signed, WEBHOOK_ID)
    PayPalVerifier(signer.ca_pem).verify(headers, signed, WEBHOOK_ID)
    assert refused(signer, headers, REFUND_EVENT) == "bad_signature"


@pytest.mark.parametrize("name", ["evilpaypal.com", "*.evilpaypal.com",
                                  "messageverificationcerts.evilpaypal.com"])
def test_a_certificate_for_a_name_merely_ending_in_paypal_com_is_refused(rsps, name):
    """A trusted CA's certificate for evilpaypal.com (or under it) cannot sign PayPal events."""
    impostor = make_signer(common_name=name)
    serve_cert(rsps, impostor)
    headers = impostor.headers(REFUND_EVENT, WEBHOOK_ID)
    assert refused(impostor, headers, REFUND_EVENT) == "cert_name_mismatch"
