"""Stripe-Signature verification against a merchant's secrets: which refusal each bad delivery
gets and what it tells the sender (the 400 body), and a signing secret rolled without downtime."""

from __future__ import annotations

import time

import pytest

from gateway.signatures.stripe import verify_stripe
from service.errors import VerificationError
from tests.support.stripe import SECRET, signature

BODY = b'{"id": "evt_1", "object": "event", "type": "charge.succeeded"}'
OLD_SECRET = "whsec_test_theopenhost_previous"
TOLERANCE = 300


def refusal(header: str | None, secrets: list[str], body: bytes = BODY) -> tuple[str, str]:
    """Verify ``body`` under ``header``, which must be refused: (code, message)."""
    with pytest.raises(VerificationError) as caught:
        verify_stripe(body, header, secrets, TOLERANCE)
    return caught.value.code, caught.value.message


@pytest.mark.parametrize("header", [None, ""], ids=["absent", "empty"])
def test_a_missing_header_is_refused_saying_so(header):
    assert refusal(header, [SECRET]) == ("missing_header", "Stripe-Signature header is missing")


def test_a_header_that_is_not_ascii_is_refused_as_malformed():
    header = signature(BODY).replace("t=", "t\u00e9=")
    assert refusal(header, [SECRET]) == (
        "malformed_header", "Stripe-Signature header is not ASCII")


def test_a_body_that_is_not_utf8_is_refused_as_malformed():
    body = b'{"id": "evt_\xff"}'
    header = f"t={int(time.time())},v1={'0' * 64}"
    assert refusal(header, [SECRET], body) == ("malformed_body", "body is not valid UTF-8")


@pytest.mark.parametrize("header", ["garbage", f"t={int(time.time())},v0=abc"],
                         ids=["no parts", "no v1 scheme"])
def test_a_header_without_t_and_v1_is_refused_as_malformed(header):
    assert refusal(header, [SECRET]) == (
        "malformed_header", "Stripe-Signature header has no t= and v1= parts")


def test_a_signature_from_no_configured_secret_is_a_bad_signature():
    header = signature(BODY, "whsec_someone_else")
    assert refusal(header, [SECRET, OLD_SECRET]) == (
        "bad_signature", "no configured secret produced this signature")


def test_a_stale_signature_names_the_tolerance():
    header = signature(BODY, timestamp=int(time.time()) - TOLERANCE - 60)
    assert refusal(header, [SECRET]) == (
        "stale_timestamp", f"signature timestamp is older than {TOLERANCE} seconds")


def test_a_stale_signature_stays_stale_when_a_later_secret_does_not_match():
    """The secret that signed it found it stale; the next secret not matching at all does not
    turn that into a bad signature."""
    header = signature(BODY, timestamp=int(time.time()) - TOLERANCE - 60)
    assert refusal(header, [SECRET, OLD_SECRET])[0] == "stale_timestamp"


def test_any_configured_secret_may_have_signed_it():
    """During a roll both the new and the old secret verify, in either order."""
    verify_stripe(BODY, signature(BODY, OLD_SECRET), [SECRET, OLD_SECRET], TOLERANCE)
    verify_stripe(BODY, signature(BODY, SECRET), [SECRET, OLD_SECRET], TOLERANCE)
