"""Delivering events to the app and running the worker side in-process, for integration tests."""

from __future__ import annotations

from typing import Any

from rq import SimpleWorker

from service.bootstrap import Container
from service.devcerts import DevPayPalSigner
from tests.support import stripe as stripe_sig

PAYPAL_MERCHANT = "theopenhost"
PAYPAL_WEBHOOK_ID = "WH-THEOPENHOST-SANDBOX-003"


def deliver(client: Any, provider: str, event: dict[str, Any],
            signer: DevPayPalSigner | None = None) -> Any:
    """POST one signed event as its provider would; asserts the gateway acknowledged it."""
    if provider == "stripe":
        resp = stripe_sig.post(client, event)
    else:
        assert signer is not None
        raw = stripe_sig.body_of(event)
        resp = client.post(f"/webhooks/{PAYPAL_MERCHANT}/paypal", data=raw,
                           headers=signer.headers(raw, PAYPAL_WEBHOOK_ID),
                           content_type="application/json")
    assert resp.status_code == 200, resp.json
    return resp


def run_worker(container: Container) -> None:
    """Run a real RQ worker in this process until the queue is empty."""
    SimpleWorker([container.queue], connection=container.redis).work(burst=True)
