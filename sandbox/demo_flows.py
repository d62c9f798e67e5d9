"""Support flows driven over HTTP against a running gateway: for every seed merchant, one claim
that ends in a refund, one in account credit, one in a denial and one left in review.

Each flow puts a fresh paid subscription in the ledger through signed Stripe webhooks, files a
refund request through the admin API, waits for the worker's Decision, and, where the policy
leaves the call to the merchant, answers the review as support would.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from sandbox import samples
from sandbox.simulator import send_stripe
from service.config import Settings

DAY = 86400
_FULL_ID = {"username": "alice", "main_domain": "alice.example", "invoice_number": "INV-3",
            "date_of_birth": "1980-02-03", "client_name": "Alice Example",
            "telephone": "+1 555 0100", "contact_name": "Alice", "address": "1 Main St",
            "login_name": "alice", "verified": True}


@dataclass(frozen=True)
class Flow:
    merchant: str
    label: str  # refund | credit | denial | review
    claim: dict[str, Any]  # what support files besides account and payment
    expect: str  # the Decision outcome the policy gives
    days_ago: float = 2
    interval: str = "month"
    amount: int = 6000
    usage: dict[str, Any] | None = None
    answer: dict[str, Any] | None = None  # the review answer support gives, if any


def _claim(**extra: Any) -> dict[str, Any]:
    return {"reason": "it does not work for me", "identity": _FULL_ID, **extra}


_LIGHT = {"bandwidth_bytes": 2**30, "sessions": 5}
_HEAVY = {"bandwidth_bytes": 15 * 2**30, "sessions": 40}
_REFUND_IN_REVIEW = {"approve": True, "reviewer": "demo@support",
                     "refund": {"amount": 3000, "currency": "USD"}, "note": "half, as agreed"}
_CREDIT_IN_REVIEW = {"approve": True, "reviewer": "demo@support",
                     "credit": {"amount": 1500, "currency": "USD"}, "note": "credit instead"}

FLOWS: tuple[Flow, ...] = (
    # 003 TheOpenHost: the 16-day guarantee; unknown products go to a person.
    Flow("theopenhost", "refund", _claim(), "full_refund"),
    Flow("theopenhost", "credit", _claim(product_category="custom_widget"), "needs_review",
         answer=_CREDIT_IN_REVIEW),
    Flow("theopenhost", "denial", _claim(), "deny", days_ago=20),
    Flow("theopenhost", "review", _claim(product_category="custom_widget"), "needs_review"),
    # 002 CloudBehind VPN: 7 days, under 10GB and 100 sessions; heavy use is discretionary.
    Flow("cloudbehind", "refund", _claim(), "full_refund", usage=_LIGHT),
    Flow("cloudbehind", "credit", _claim(), "needs_review", interval="year", usage=_HEAVY,
         answer=_CREDIT_IN_REVIEW),
    Flow("cloudbehind", "denial", _claim(), "deny", days_ago=10, usage=_LIGHT),
    Flow("cloudbehind", "review", _claim(), "needs_review", interval="year", usage=_HEAVY),
    # 001 digital services: nothing refunded once started; provider faults are discretionary.
    Flow("digitalcare", "refund", _claim(service_state="not_started"), "full_refund"),
    Flow("digitalcare", "credit", _claim(reason_code="provider_fault",
                                         service_state="completed"), "needs_review",
         answer=_CREDIT_IN_REVIEW),
    Flow("digitalcare", "denial", _claim(reason_code="user_error", service_state="completed"),
         "deny"),
    Flow("digitalcare", "review", _claim(reason_code="provider_fault",
                                         service_state="completed"), "needs_review"),
    # 000 One Click: its policy states no refund terms, so support decides every refund.
    Flow("oneclick", "refund", _claim(), "needs_review", answer=_REFUND_IN_REVIEW),
    Flow("oneclick", "credit", _claim(), "needs_review", answer=_CREDIT_IN_REVIEW),
    Flow("oneclick", "denial", _claim(reason_code="non_use"), "deny"),
    Flow("oneclick", "review", _claim(), "needs_review"),
)


@dataclass
class Result:
    flow: Flow
    request_id: str
    decision: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return str(self.decision.get("decision", {}).get("outcome", "?"))

    @property
    def actions(self) -> list[dict[str, Any]]:
        return list(self.decision.get("actions", []))


OnSend = Callable[[dict[str, Any]], None]


def run_flows(base: str, settings: Settings, flows: Iterable[Flow] = FLOWS,
              timeout: float = 60.0, on_send: OnSend | None = None) -> list[Result]:
    """Drive every flow against the gateway at ``base``; returns what each ended in.

    ``on_send`` sees every webhook payload before it is sent (a fake provider learns from it
    the payments it captured)."""
    results = []
    for n, flow in enumerate(flows):
        scenario = _paid_subscription(base, settings, flow, key=f"flow-{n}-{time.time_ns()}",
                                      on_send=on_send)
        headers = _headers(settings, flow.merchant)
        if flow.usage is not None:
            _post(f"{base}/v1/usage", headers, {"account": scenario.customer_id, **flow.usage})
        claim = dict(flow.claim)
        if "service_state" in claim:  # 001 counts its 7 days from the service date
            claim["service_date"] = _iso(scenario.period_start)
        filed = _post(f"{base}/v1/refund-requests", headers, {
            "account": scenario.customer_id, "payment": scenario.charge_id, **claim})
        results.append(Result(flow, filed["id"]))
    for result in results:
        result.decision = _wait_decided(base, settings, result, timeout)
        if result.flow.answer is not None:
            _post(f"{base}/v1/reviews/{result.decision['id']}",
                  _headers(settings, result.flow.merchant), result.flow.answer)
    for result in results:
        result.decision = _wait_settled(base, settings, result, timeout)
    return results


def _paid_subscription(base: str, settings: Settings, flow: Flow, key: str,
                       on_send: OnSend | None = None) -> samples.Scenario:
    scenario = samples.Scenario(key=key, amount=flow.amount, interval=flow.interval,
                                period_start=int(time.time() - flow.days_ago * DAY))
    secret = settings.merchants[flow.merchant].stripe.webhook_secrets[0]
    url = f"{base}/webhooks/{flow.merchant}/stripe"
    for event_type in ("customer.subscription.created", "invoice.paid", "charge.succeeded"):
        event = samples.stripe_event(event_type, scenario)
        if on_send is not None:
            on_send(event)
        result = send_stripe(url, event, secret)
        if result.status != 200:
            raise RuntimeError(f"the gateway refused a signed event: {result.body}")
    return scenario


def _iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


def _headers(settings: Settings, merchant: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.merchants[merchant].admin_token}",
            "X-Gateway-Actor": "demo@support"}


def _post(url: str, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    resp = requests.post(url, json=body, headers=headers, timeout=10)
    if resp.status_code >= 300:
        raise RuntimeError(f"POST {url} answered {resp.status_code}: {resp.text}")
    return dict(resp.json())


def _get(base: str, settings: Settings, result: Result) -> dict[str, Any]:
    resp = requests.get(f"{base}/v1/refund-requests/{result.request_id}",
                        headers=_headers(settings, result.flow.merchant), timeout=10)
    resp.raise_for_status()
    return dict(resp.json())


def _wait_decided(base: str, settings: Settings, result: Result, timeout: float
                  ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = _get(base, settings, result)
        if shown["status"] == "failed":
            raise RuntimeError(f"request {result.request_id} failed: {shown['error']}")
        if shown["decision"] is not None:
            return dict(shown["decision"])
        time.sleep(0.2)
    raise RuntimeError(f"request {result.request_id} was not decided in {timeout:.0f}s")


def _wait_settled(base: str, settings: Settings, result: Result, timeout: float
                  ) -> dict[str, Any]:
    """Until every action is done (succeeded, submitted or failed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        decision = dict(_get(base, settings, result)["decision"])
        if all(a["status"] in ("succeeded", "submitted", "failed")
               for a in decision["actions"]):
            return decision
        time.sleep(0.2)
    raise RuntimeError(f"the actions of {result.request_id} did not finish in {timeout:.0f}s")


def ended_in(result: Result) -> str:
    """What the customer got: refund, credit, denial or review (the acceptance's four)."""
    kinds = {a["kind"] for a in result.actions if a["status"] in ("succeeded", "submitted")}
    if "refund" in kinds:
        return "refund"
    if "credit" in kinds:
        return "credit"
    return {"deny": "denial", "needs_review": "review"}.get(result.outcome, result.outcome)


def report(results: list[Result]) -> str:
    """A readable account of every flow: what was decided, why, and what was carried out."""
    lines = []
    for merchant in dict.fromkeys(r.flow.merchant for r in results):
        lines.append(f"\n== {merchant}: support flows")
        for r in (r for r in results if r.flow.merchant == merchant):
            amounts = r.decision.get("decision", {}).get("amounts", {})
            lines.append(f"  {r.flow.label:7} -> {ended_in(r):7} outcome={r.outcome:13} "
                         f"request={r.request_id} decision={r.decision.get('id')}")
            for a in r.actions:
                lines.append(f"      {a['kind']:6} {a['amount']['amount'] / 100:8.2f} "
                             f"{a['amount']['currency']} {a['status']} "
                             f"{a['provider_ref'] or ''} ({a['clause']})")
            if r.outcome == "deny":
                for reason in r.decision["decision"]["reasons"]:
                    if not reason["holds"]:
                        lines.append(f"      failed {reason['clause']}: {reason['detail']}")
            if r.outcome == "needs_review" and r.flow.answer is None:
                proposed = amounts.get("proposed_refund")
                lines.append(f"      waiting in GET /v1/reviews"
                             f"{f' (proposed refund {proposed})' if proposed else ''}")
    return "\n".join(lines)
