"""PayPal test helpers: one dev signer per session, a real-shaped event, a faked cert host."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from typing import Any

import requests
import responses

from sandbox.devcerts import DevPayPalSigner, make_signer

WEBHOOK_ID = "8PT597110X687430LKGECATA"
SANDBOX_API_BASE = "https://api-m.sandbox.paypal.com"

# Shaped like a sandbox PAYMENT.CAPTURE.REFUNDED delivery (compact, as PayPal sends it).
REFUND_EVENT = (
    b'{"id":"WH-2WR32451HC0233532-67976317FL4543714","event_version":"1.0",'
    b'"create_time":"2024-03-01T10:15:00.123Z","resource_type":"refund",'
    b'"resource_version":"2.0","event_type":"PAYMENT.CAPTURE.REFUNDED",'
    b'"summary":"A EUR 4.99 EUR capture payment was refunded",'
    b'"resource":{"id":"1Y107995YT783435V","status":"COMPLETED",'
    b'"amount":{"currency_code":"EUR","value":"4.99"},'
    b'"invoice_id":"INV-2024-0042","custom_id":"order-7731",'
    b'"create_time":"2024-03-01T10:14:58Z","update_time":"2024-03-01T10:14:58Z",'
    b'"links":[{"href":"https://api.sandbox.paypal.com/v2/payments/refunds/1Y107995YT783435V",'
    b'"rel":"self","method":"GET"}]},'
    b'"links":[{"href":"https://api.sandbox.paypal.com/v1/notifications/webhooks-events/'
    b'WH-2WR32451HC0233532-67976317FL4543714","rel":"self","method":"GET"}]}'
)


@functools.cache
def shared_signer() -> DevPayPalSigner:
    """The session's dev signer; key generation is too slow to repeat per test."""
    return make_signer()


def serve_cert(rsps: responses.RequestsMock, signer: DevPayPalSigner) -> None:
    """Answer GET ``signer.cert_url`` with the signer's certificate chain, as PayPal would."""
    rsps.get(signer.cert_url, body=signer.cert_pem, content_type="application/x-pem-file")


def paid_after_it_ended(scenario: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A PayPal subscription cancelled a day into its first period, and the sale of its second
    period that PayPal took all the same (003 §1.7b's overpayment): (cancelled, sale) events."""
    from sandbox import samples

    cancelled = samples.paypal_event("BILLING.SUBSCRIPTION.CANCELLED", scenario)
    ended = datetime.fromtimestamp(scenario.period(1)[0] + 86400, UTC)
    cancelled["resource"]["status_update_time"] = cancelled["resource"]["update_time"] = (
        ended.isoformat().replace("+00:00", "Z"))
    return cancelled, samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=2)


def post_signed(base: str, merchant: str, webhook_id: str, event: dict[str, Any]) -> int:
    """POST ``event`` to a running gateway, signed as PayPal would; returns the status."""
    raw = json.dumps(event).encode()
    headers = {**shared_signer().headers(raw, webhook_id), "Content-Type": "application/json"}
    return requests.post(f"{base}/webhooks/{merchant}/paypal", data=raw, headers=headers,
                         timeout=10).status_code


def dispute_event(sale_id: str, status: str, outcome: str | None = None,
                    at: str = "2026-02-10T10:00:00Z") -> dict[str, Any]:
    """A CUSTOMER.DISPUTE.* event as PayPal's Disputes API v1 sends it."""
    resource: dict[str, Any] = {
        "dispute_id": "PP-D-4242", "create_time": "2026-02-09T10:00:00Z", "update_time": at,
        "disputed_transactions": [{"seller_transaction_id": sale_id,
                                   "buyer_transaction_id": "BUYER-TXN-1"}],
        "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED", "status": status,
        "dispute_amount": {"currency_code": "USD", "value": "120.00"},
        "dispute_life_cycle_stage": "CHARGEBACK", "dispute_channel": "EXTERNAL",
    }
    if outcome:
        resource["dispute_outcome"] = {"outcome_code": outcome}
    kind = "RESOLVED" if status == "RESOLVED" else "CREATED"
    return {"id": f"WH-DISPUTE-{status}-{outcome}", "event_version": "1.0",
            "create_time": at, "resource_type": "dispute",
            "event_type": f"CUSTOMER.DISPUTE.{kind}", "summary": "A dispute was updated",
            "resource": resource, "links": []}


def deliver(client: Any, event: dict[str, Any], merchant: str = "theopenhost",
            webhook_id: str = "WH-THEOPENHOST-SANDBOX-003") -> None:
    """POST ``event`` to the app under test, signed as PayPal would; asserts the 200."""
    raw = json.dumps(event).encode()
    resp = client.post(f"/webhooks/{merchant}/paypal", data=raw,
                       headers=shared_signer().headers(raw, webhook_id),
                       content_type="application/json")
    assert resp.status_code == 200, resp.get_data(as_text=True)


def sale_at(scenario: Any, cycle: int, at: datetime, sale_id: str | None = None
            ) -> dict[str, Any]:
    """The cycle's completed sale, paid at ``at`` (the sale's own time, not only the event's);
    ``sale_id`` makes it another sale of that cycle (a manual payment, say)."""
    from sandbox import samples

    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    extra = {"id": sale_id, "event_id": f"WH-{sale_id}"} if sale_id else {}
    event = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=cycle,
                                 create_time=stamp, update_time=stamp, **extra)
    event["resource"]["create_time"] = stamp
    return event
