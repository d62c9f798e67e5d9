"""Signing and delivering sample webhook events, the way Stripe and PayPal deliver them.

The core of ``gateway simulate``: it encodes an event to the bytes a provider would send, signs
those exact bytes, and POSTs them to a webhook URL. Events come from ``sandbox.samples``; PayPal
signing is delegated to a ``signer`` (``sandbox.devcerts``) so this module holds no keys.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import requests
import stripe

from service.errors import GatewayError

# What the providers' delivery agents send beside the body (the signature headers aside).
_STRIPE_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    "Accept": "*/*; q=0.5, application/xml",
    "Cache-Control": "no-cache",
}
_PAYPAL_HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": "PayPal/AUHD-214.0-58843264",
    "Accept": "*/*",
}


class PayPalSigner(Protocol):
    """Makes the ``PAYPAL-TRANSMISSION-*``, ``PAYPAL-CERT-URL`` and ``PAYPAL-AUTH-ALGO`` headers."""

    def headers(self, raw_body: bytes, webhook_id: str) -> dict[str, str]: ...


class DeliveryError(GatewayError):
    """A simulated delivery did not reach the gateway (refused, timed out, bad URL)."""

    def __init__(self, url: str, event_id: str, cause: Exception) -> None:
        super().__init__(f"could not deliver {event_id} to {url}: {cause}")
        self.url = url
        self.event_id = event_id


@dataclass(frozen=True)
class SendResult:
    """The gateway's answer to one delivery: HTTP status, body (JSON if it parsed), event id."""

    status: int
    body: dict[str, Any] | str
    event_id: str


def stripe_signature_header(raw_body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header for ``raw_body``: ``t=<ts>,v1=<HMAC-SHA256 hex>``.

    ``timestamp`` defaults to now, as Stripe signs at delivery time.
    """
    header: str = stripe.WebhookSignature.generate_signature_header(
        raw_body.decode("utf-8"), secret, timestamp
    )
    return header


def encode(event: dict[str, Any]) -> bytes:
    """The body a provider would send: Stripe pretty-prints with two spaces, PayPal is compact."""
    if event.get("object") == "event":
        return json.dumps(event, indent=2, ensure_ascii=False).encode("utf-8")
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def send_stripe(
    url: str,
    event: dict[str, Any],
    secret: str,
    *,
    session: requests.Session | None = None,
    timeout: float = 10.0,
) -> SendResult:
    """POST ``event`` to ``url`` signed with the endpoint ``secret`` (``whsec_…``)."""
    body = encode(event)
    headers = _STRIPE_HEADERS | {"Stripe-Signature": stripe_signature_header(body, secret)}
    return _post(session, url, body, headers, timeout, event["id"])


def send_paypal(
    url: str,
    event: dict[str, Any],
    signer: PayPalSigner,
    webhook_id: str,
    *,
    session: requests.Session | None = None,
    timeout: float = 10.0,
) -> SendResult:
    """POST ``event`` to ``url`` with the transmission headers ``signer`` makes for it."""
    body = encode(event)
    headers = _PAYPAL_HEADERS | signer.headers(body, webhook_id)
    return _post(session, url, body, headers, timeout, event["id"])


def _post(
    session: requests.Session | None,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    event_id: str,
) -> SendResult:
    try:
        response = (session or requests).post(url, data=body, headers=headers, timeout=timeout)
    except requests.RequestException as exc:
        raise DeliveryError(url, event_id, exc) from exc
    return SendResult(response.status_code, _answer(response), event_id)


def _answer(response: requests.Response) -> dict[str, Any] | str:
    try:
        parsed = response.json()
    except ValueError:
        return response.text
    return parsed if isinstance(parsed, dict) else response.text
