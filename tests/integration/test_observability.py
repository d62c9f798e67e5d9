"""Metrics move as promised, /metrics exposes them with the queue lag, and every log line names
the merchant and event it is about without ever carrying a secret.

prometheus_client's metrics are process-wide, so each test compares a value before and after.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from adapters.base import PaymentTarget
from gateway.app import create_app
from policy.money import Money
from sandbox import samples
from service.errors import ProviderError
from tests.support import stripe as sig
from tests.support.delivery import deliver, run_worker, settle
from tests.support.paypal import shared_signer

MERCHANT = "theopenhost"
PAYPAL = "https://api-m.sandbox.paypal.com"
STRIPE_REFUNDS = "https://api.stripe.com/v1/refunds"
DAY = 86400


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class _Delta:
    """How much a metric sample moved since this was made."""

    def __init__(self, name: str, **labels: str) -> None:
        self.name, self.labels = name, labels
        self.start = _value(name, **labels)

    @property
    def moved(self) -> float:
        return _value(self.name, **self.labels) - self.start


def _event(key: str, event_type: str = "charge.succeeded") -> dict[str, Any]:
    return samples.stripe_event(event_type, samples.Scenario(key=key))


# -- webhooks ----------------------------------------------------------------------------------


def test_a_verified_delivery_counts_received_and_verified(client, container):
    """One signed Stripe event: received and verified move by one, nothing is rejected."""
    received = _Delta("gateway_webhooks_received_total", provider="stripe", merchant=MERCHANT)
    verified = _Delta("gateway_webhooks_verified_total", provider="stripe", merchant=MERCHANT)
    rejected = _Delta("gateway_webhooks_rejected_total", provider="stripe",
                      reason="bad_signature")
    deliver(client, "stripe", _event("obs-verified"))
    assert (received.moved, verified.moved, rejected.moved) == (1, 1, 0)


@pytest.mark.parametrize(("reason", "post"), [
    ("bad_signature", lambda client, e: sig.post(client, e, secret="whsec_someone_else")),
    ("stale_timestamp", lambda client, e: sig.post(client, e,
                                                   timestamp=int(time.time()) - 3600)),
    ("missing_header", lambda client, e: sig.post(client, e, header="")),
])
def test_a_rejected_delivery_counts_its_reason(client, container, reason: str,
                                               post: Callable[..., Any]):
    """A refused delivery is received, not verified, and rejected under the code answered."""
    received = _Delta("gateway_webhooks_received_total", provider="stripe", merchant=MERCHANT)
    verified = _Delta("gateway_webhooks_verified_total", provider="stripe", merchant=MERCHANT)
    rejected = _Delta("gateway_webhooks_rejected_total", provider="stripe", reason=reason)
    resp = post(client, _event(f"obs-{reason}"))
    assert resp.status_code == 400 and resp.json["error"]["code"] == reason
    assert (received.moved, verified.moved, rejected.moved) == (1, 0, 1)


def test_a_redelivery_counts_as_a_duplicate(client, container):
    """The second delivery of one event moves the duplicates counter, the first does not."""
    duplicates = _Delta("gateway_webhooks_duplicates_total", provider="stripe")
    event = _event("obs-duplicate")
    deliver(client, "stripe", event)
    assert duplicates.moved == 0
    assert deliver(client, "stripe", event).json["duplicate"] is True
    assert duplicates.moved == 1


# -- workers -----------------------------------------------------------------------------------


def test_drained_events_count_by_the_status_they_end_in(client, container):
    """A routed event is counted processed; one with no route is counted ignored."""
    processed = _Delta("gateway_events_processed_total", provider="stripe", outcome="processed")
    ignored = _Delta("gateway_events_processed_total", provider="stripe", outcome="ignored")
    deliver(client, "stripe", _event("obs-drained"))
    unrouted = _event("obs-unrouted")
    unrouted["type"] = "customer.discount.created"
    deliver(client, "stripe", unrouted)
    assert (processed.moved, ignored.moved) == (0, 0)  # counted when drained, not received
    run_worker(container)
    assert (processed.moved, ignored.moved) == (1, 1)


@responses.activate
def test_a_decision_made_while_draining_counts_its_outcome(client, container):
    """A PayPal sale on an ended subscription is decided in the drain as a partial refund:
    the decision is counted by outcome, and the refund call is timed."""
    scenario = samples.Scenario(key="obs-overpaid", amount=2000, payment_method="paypal",
                                period_start=int(time.time() - 40 * DAY))
    events = [samples.paypal_event("BILLING.SUBSCRIPTION.CANCELLED", scenario),
              samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=2)]
    events[0]["resource"]["status_update_time"] = events[0]["resource"]["update_time"] = (
        datetime.fromtimestamp(scenario.period(1)[0] + DAY, UTC)
        .isoformat().replace("+00:00", "Z"))
    responses.post(f"{PAYPAL}/v1/oauth2/token",
                   json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})
    responses.post(f"{PAYPAL}/v1/payments/sale/{events[1]['resource']['id']}/refund",
                   json={"id": "RF1", "state": "completed",
                         "amount": {"total": "19.00", "currency": "USD"}})
    decisions = _Delta("gateway_decisions_total", merchant=MERCHANT, outcome="partial_refund")
    processed = _Delta("gateway_events_processed_total", provider="paypal", outcome="processed")
    refunds = _Delta("gateway_provider_call_seconds_count", provider="paypal",
                     operation="refund")
    for event in events:
        deliver(client, "paypal", event, shared_signer())
        run_worker(container)  # in order: the cancellation is known when the sale arrives
    assert (decisions.moved, processed.moved, refunds.moved) == (1, 2, 1)


def test_a_failing_drain_job_counts_as_a_job_failure(container, other_container, tmp_path):
    """A drain whose database has no tables raises: RQ fails the job and it is counted."""
    broken = other_container(f"sqlite:///{tmp_path / 'no-tables.db'}", container.redis_url)
    failures = _Delta("gateway_job_failures_total", kind="drain")
    from service.bootstrap import install

    install(broken)
    broken.dispatcher.notify(1, 0)
    run_worker(broken)
    assert failures.moved == 1
    assert broken.queue.failed_job_registry.count == 1


# -- provider calls ----------------------------------------------------------------------------


def _charge() -> PaymentTarget:
    return PaymentTarget("stripe", "charge", "ch_obs_1")


@responses.activate
def test_a_stripe_refund_call_is_timed(container):
    """A successful refund adds one observation to the latency histogram and no error."""
    count = _Delta("gateway_provider_call_seconds_count", provider="stripe", operation="refund")
    errors = _Delta("gateway_provider_call_errors_total", provider="stripe", operation="refund",
                    code="unavailable")
    responses.post(STRIPE_REFUNDS, json={"id": "re_obs", "object": "refund", "amount": 500,
                                         "charge": "ch_obs_1", "currency": "usd",
                                         "status": "succeeded", "metadata": {}})
    adapter = container.refund_adapter(MERCHANT, "stripe")
    adapter.refund(_charge(), Money(500, "USD"), "obs", "act_obs_ok", {})
    assert (count.moved, errors.moved) == (1, 0)


@responses.activate
@pytest.mark.parametrize(("status", "body", "code"), [
    (500, {"error": {"type": "api_error", "message": "boom"}}, "unavailable"),
    (400, {"error": {"type": "invalid_request_error", "code": "charge_already_refunded",
                     "message": "already refunded"}}, "already_refunded"),
])
def test_a_failed_stripe_refund_call_counts_its_error_code(container, status: int,
                                                           body: dict[str, Any], code: str):
    """A 5xx or a refusal is counted under our error code, and still timed."""
    count = _Delta("gateway_provider_call_seconds_count", provider="stripe", operation="refund")
    errors = _Delta("gateway_provider_call_errors_total", provider="stripe", operation="refund",
                    code=code)
    responses.post(STRIPE_REFUNDS, status=status, json=body)
    adapter = container.refund_adapter(MERCHANT, "stripe")
    with pytest.raises(ProviderError):
        adapter.refund(_charge(), Money(500, "USD"), "obs", f"act_obs_{status}", {})
    assert (count.moved, errors.moved) == (1, 1)


@responses.activate
def test_a_paypal_server_error_counts_as_unavailable(container):
    """PayPal answering 500 to a refund is counted as an ``unavailable`` error."""
    errors = _Delta("gateway_provider_call_errors_total", provider="paypal", operation="refund",
                    code="unavailable")
    responses.post(f"{PAYPAL}/v1/oauth2/token",
                   json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})
    responses.post(f"{PAYPAL}/v1/payments/sale/SALE-OBS/refund", status=500,
                   json={"name": "INTERNAL_SERVICE_ERROR"})
    adapter = container.refund_adapter(MERCHANT, "paypal")
    with pytest.raises(ProviderError):
        adapter.refund(PaymentTarget("paypal", "sale", "SALE-OBS"), Money(500, "USD"), "obs",
                       "act_obs_pp", {})
    assert errors.moved == 1


# -- /metrics ----------------------------------------------------------------------------------


def _scrape(client: Any, **headers: str) -> dict[str, Any]:
    resp = client.get("/metrics", headers=headers)
    assert resp.status_code == 200, resp.data
    assert resp.content_type.startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(resp.text)}


def _samples(family: Any) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples}


def test_metrics_parse_and_include_the_queue_lag(client, container):
    """A pending event shows in its partition's depth and in the oldest pending age."""
    deliver(client, "stripe", _event("obs-lag"))
    families = _scrape(client)
    depth = _samples(families["gateway_inbox_partition_depth"])
    assert len(depth) == container.settings.partitions and sum(depth.values()) == 1
    (age,) = _samples(families["gateway_inbox_oldest_pending_age_seconds"]).values()
    assert 0 <= age < 60
    assert _samples(families["gateway_scrape_source_up"]) == {
        (("source", "redis"),): 1.0, (("source", "database"),): 1.0}
    assert _samples(families["gateway_rq_queue_depth"])[(("queue", "gateway"),)] >= 1
    received = _samples(families["gateway_webhooks_received"])
    assert received[(("merchant", MERCHANT), ("provider", "stripe"))] >= 1
    run_worker(container)
    drained = _scrape(client)
    assert sum(_samples(drained["gateway_inbox_partition_depth"]).values()) == 0
    assert _samples(drained["gateway_inbox_oldest_pending_age_seconds"]) == {(): 0.0}


def test_metrics_still_answer_when_redis_is_down(container, other_container):
    """With Redis unreachable the scrape succeeds, says so, and still reports the database."""
    down = other_container(container.settings.database_url, "redis://127.0.0.1:1/0")
    families = _scrape(create_app(container=down).test_client())
    assert _samples(families["gateway_scrape_source_up"]) == {
        (("source", "redis"),): 0.0, (("source", "database"),): 1.0}
    assert "gateway_inbox_partition_depth" not in families
    assert "gateway_inbox_oldest_pending_age_seconds" in families


def test_metrics_take_a_bearer_token_when_one_is_configured(container, other_container):
    """GATEWAY_METRICS_TOKEN set: no token or a wrong one gets 401, the right one the page."""
    guarded = other_container(container.settings.database_url, container.redis_url,
                              metrics_token="metrics-secret-1")
    client = create_app(container=guarded).test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert "gateway_scrape_source_up" in _scrape(client, Authorization="Bearer metrics-secret-1")


# -- logs --------------------------------------------------------------------------------------


def test_webhook_and_drain_lines_name_the_merchant_and_event(client, container, log_lines):
    """Every line is JSON with merchant and event_id; the drain's lines carry the event's,
    and RQ's own lines come through the same formatter. An accepted delivery writes no line of
    its own (the metrics count it, and the access line names it); a refused one does."""
    event = _event("obs-logs")
    deliver(client, "stripe", event)
    run_worker(container)
    lines = log_lines()
    assert lines and all({"time", "level", "logger", "message", "merchant", "event_id"} <= set(line)
                         for line in lines)
    stored = [line for line in lines if line["logger"] == "gateway.webhooks"]
    drained = [line for line in lines if line["logger"] == "workers.drain"]
    assert not stored and drained and any(line["logger"].startswith("rq.") for line in lines)
    for line in drained:
        assert (line["merchant"], line["event_id"], line["provider"]) == (
            MERCHANT, event["id"], "stripe")
    assert all(isinstance(line["inbox_id"], int) and line["job"] == "drain" for line in drained)
    assert lines[0]["time"].endswith("Z")
    assert sig.post(client, _event("obs-forged"), secret="whsec_wrong").status_code == 400
    (refused,) = [line for line in log_lines() if line["logger"] == "gateway.webhooks"]
    assert refused["merchant"] == MERCHANT and "bad_signature" in refused["message"]


@responses.activate
def test_no_secret_or_token_reaches_a_log_line(client, container, log_lines):
    """A delivery, a forged one, an admin call, the drain and a refund at DEBUG: none of the
    merchant's secrets, its admin token or the signature sent appears in any line."""
    merchant = container.settings.merchant(MERCHANT)
    raw = sig.body_of(_event("obs-secrets"))
    header = sig.signature(raw)
    assert sig.post(client, raw, header=header).status_code == 200
    assert sig.post(client, _event("obs-forged"), secret="whsec_someone_else").status_code == 400
    auth = {"Authorization": f"Bearer {merchant.admin_token}"}
    assert client.get("/v1/reviews", headers=auth).status_code == 200
    run_worker(container)
    responses.post(STRIPE_REFUNDS, json={"id": "re_obs_s", "object": "refund", "amount": 100,
                                         "charge": "ch_obs_1", "currency": "usd",
                                         "status": "succeeded", "metadata": {}})
    container.refund_adapter(MERCHANT, "stripe").refund(_charge(), Money(100, "USD"), "obs",
                                                        "act_obs_secret", {})
    text = "\n".join(json.dumps(line) for line in log_lines())
    secrets = [*merchant.stripe.webhook_secrets, merchant.stripe.api_key, merchant.admin_token,
               merchant.paypal.client_secret, header.split("v1=")[1], "whsec_someone_else"]
    assert text and not [s for s in secrets if s and s in text]
    assert any(line["merchant"] == MERCHANT for line in log_lines())


@responses.activate
def test_a_batch_redone_event_by_event_counts_its_decisions_once(client, container):
    """One event of a batch fails, so the batch is rolled back and redone with a savepoint per
    event: the decision the other event made in the discarded attempt is not counted."""
    from sqlalchemy import select

    from ledger.models import InboxEvent
    from workers.drain import process_batch

    scenario = samples.Scenario(key="obs-redone", amount=2000, payment_method="paypal",
                                period_start=int(time.time() - 40 * DAY))
    cancel = samples.paypal_event("BILLING.SUBSCRIPTION.CANCELLED", scenario)
    cancel["resource"]["status_update_time"] = cancel["resource"]["update_time"] = (
        datetime.fromtimestamp(scenario.period(1)[0] + DAY, UTC)
        .isoformat().replace("+00:00", "Z"))
    sale = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=2)
    # About a Stripe subscription the ledger has never seen: it fails, to be retried later.
    orphan = samples.stripe_event("invoice.upcoming", samples.Scenario(key="obs-orphan"), cycle=1)
    responses.post(f"{PAYPAL}/v1/oauth2/token",
                   json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})
    responses.post(f"{PAYPAL}/v1/payments/sale/{sale['resource']['id']}/refund",
                   json={"id": "RF2", "state": "completed",
                         "amount": {"total": "19.00", "currency": "USD"}})
    deliver(client, "paypal", cancel, shared_signer())
    run_worker(container)
    decisions = _Delta("gateway_decisions_total", merchant=MERCHANT, outcome="partial_refund")
    retried = _Delta("gateway_events_processed_total", provider="stripe", outcome="retry")
    deliver(client, "paypal", sale, shared_signer())
    deliver(client, "stripe", orphan)
    settle(container)
    with container.sessions() as session:
        ids = list(session.scalars(select(InboxEvent.id).where(
            InboxEvent.event_id.in_([sale["id"], orphan["id"]]))))
    assert process_batch(container, sorted(ids)) == 2
    assert (decisions.moved, retried.moved) == (1, 1)
