"""Paid subscriptions in the ledger, and the support claims filed about them, for integration
tests: the events go through the webhook endpoint and the in-process worker, as in production."""

from __future__ import annotations

import time
from typing import Any

from sandbox import samples
from tests.support import stripe as sig
from tests.support.delivery import run_worker

DAY = 86400
SECRETS = {"theopenhost": sig.SECRET, "cloudbehind": "whsec_test_cloudbehind_current",
           "digitalcare": "whsec_test_digitalcare_current"}
TOKENS = {"theopenhost": "test-admin-theopenhost-003", "cloudbehind": "test-admin-cloudbehind-002",
          "digitalcare": "test-admin-digitalcare-001"}
# Every identity detail any of the merchants asks for, checked.
FULL_IDENTITY: dict[str, Any] = {
    "username": "alice", "main_domain": "alice.example", "invoice_number": "INV-3",
    "date_of_birth": "1980-02-03", "client_name": "Alice Example", "telephone": "+1 555 0100",
    "contact_name": "Alice", "address": "1 Main St", "login_name": "alice", "verified": True}


def headers(merchant: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[merchant]}", **extra}


def paid(client: Any, container: Any, key: str, days_ago: float, merchant: str = "theopenhost",
         interval: str = "month", amount: int = 12000, **scenario: Any) -> samples.Scenario:
    """A subscription paid ``days_ago`` days ago, as its Stripe events put it in the ledger."""
    made = samples.Scenario(key=key, amount=amount, interval=interval,
                            period_start=int(time.time() - days_ago * DAY), **scenario)
    for event_type in ("customer.subscription.created", "invoice.paid", "charge.succeeded"):
        send(client, merchant, samples.stripe_event(event_type, made))
    run_worker(container)
    return made


def send(client: Any, merchant: str, event: dict[str, Any]) -> None:
    """One signed Stripe event, acknowledged."""
    resp = sig.post(client, event, merchant=merchant, secret=SECRETS[merchant])
    assert resp.status_code == 200, resp.json


def file_refund(client: Any, merchant: str, scenario: samples.Scenario, *,
                key: str | None = None, **body: Any) -> Any:
    """File a refund claim for the scenario's charge (body fields override the defaults)."""
    claim = {"account": scenario.customer_id, "payment": scenario.charge_id,
             "reason": "it does not work for me", "identity": FULL_IDENTITY, **body}
    extra = {"Idempotency-Key": key} if key else {}
    return client.post("/v1/refund-requests", json=claim, headers=headers(merchant, **extra))


def in_review(client: Any, container: Any, key: str, merchant: str = "theopenhost"
              ) -> tuple[samples.Scenario, str]:
    """A charge paid 3 days ago whose refund claim the policy leaves to a person (a product it
    does not list): the scenario and the decision's id."""
    scenario = paid(client, container, key, days_ago=3, merchant=merchant)
    filed = file_refund(client, merchant, scenario, product_category="custom_widget")
    run_worker(container)
    shown = client.get(f"/v1/refund-requests/{filed.json['id']}", headers=headers(merchant))
    decision = shown.get_json()["decision"]
    assert decision is not None and decision["status"] == "needs_review", decision
    return scenario, str(decision["id"])
