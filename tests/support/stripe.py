"""Stripe test helpers: sign a payload exactly as Stripe does and post it."""

from __future__ import annotations

import json
import time
from typing import Any

import stripe

SECRET = "whsec_test_theopenhost_current"
MERCHANT = "theopenhost"


def body_of(event: dict[str, Any] | bytes) -> bytes:
    return event if isinstance(event, bytes) else json.dumps(event, indent=2).encode()


def signature(raw: bytes, secret: str = SECRET, timestamp: int | None = None) -> str:
    ts = int(time.time()) if timestamp is None else timestamp
    header: str = stripe.WebhookSignature.generate_signature_header(
        raw.decode("utf-8"), secret, ts)
    return header


def post(client: Any, event: dict[str, Any] | bytes, *, merchant: str = MERCHANT,
         secret: str = SECRET, timestamp: int | None = None, header: str | None = None) -> Any:
    raw = body_of(event)
    sig = header if header is not None else signature(raw, secret, timestamp)
    headers = {"Stripe-Signature": sig} if sig else {}
    return client.post(f"/webhooks/{merchant}/stripe", data=raw, headers=headers,
                       content_type="application/json")
