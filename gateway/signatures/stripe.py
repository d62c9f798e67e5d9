"""Stripe-Signature verification on the raw body, against each of a merchant's secrets."""

from __future__ import annotations

from collections.abc import Sequence

import stripe

from service.errors import VerificationError


def verify_stripe(raw_body: bytes, header: str | None, secrets: Sequence[str], tolerance: int
                  ) -> None:
    """Pass if any secret signed ``raw_body`` within ``tolerance`` seconds; raise otherwise.

    Trying every secret is what lets a merchant roll its signing secret without downtime.
    """
    if not header:
        raise VerificationError("missing_header", "Stripe-Signature header is missing")
    if not header.isascii():  # stripe-python's compare_digest raises TypeError on non-ASCII
        raise VerificationError("malformed_header", "Stripe-Signature header is not ASCII")
    try:
        payload = raw_body.decode("utf-8")
    except UnicodeDecodeError:
        raise VerificationError("malformed_body", "body is not valid UTF-8") from None
    stale = False
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(payload, header, secret, tolerance)
            return
        except stripe.SignatureVerificationError as exc:
            message = str(exc.user_message or exc)
            if message.startswith("Unable to extract") or "expected scheme" in message:
                raise VerificationError(
                    "malformed_header", "Stripe-Signature header has no t= and v1= parts"
                ) from None
            stale = stale or message.startswith("Timestamp outside the tolerance")
    if stale:
        raise VerificationError(
            "stale_timestamp", f"signature timestamp is older than {tolerance} seconds"
        )
    raise VerificationError("bad_signature", "no configured secret produced this signature")
