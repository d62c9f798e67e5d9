"""Admin requests with an Idempotency-Key are done once: the same key and body answer the first
response, a reused key with another body is refused, and keys are forgotten after 72 hours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from ledger.models import IdempotencyKey, SupportRequest, UsageReport
from sandbox import samples
from service.bootstrap import Container
from tests.support.claims import file_refund, headers
from workers.scheduled import forget_idempotency_keys

MERCHANT = "theopenhost"
CLAIM = samples.Scenario(key="idem", amount=12000)


def _count(container: Container, model) -> int:
    with container.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_the_same_key_and_body_answers_the_first_response(client, container):
    """A retried claim with its key gets the same request id and status; one row is filed."""
    first = file_refund(client, MERCHANT, CLAIM, key="k-1")
    again = file_refund(client, MERCHANT, CLAIM, key="k-1")
    assert first.status_code == again.status_code == 202
    assert again.json == first.json and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _count(container, SupportRequest) == 1


def test_the_same_key_with_another_body_is_refused_naming_it(client, container):
    """422 naming the key; nothing more is filed."""
    file_refund(client, MERCHANT, CLAIM, key="k-2")
    other = file_refund(client, MERCHANT, CLAIM, key="k-2", reason="another reason")
    assert other.status_code == 422
    assert other.json["error"]["code"] == "idempotency_key_reused"
    assert other.json["error"]["field"] == "Idempotency-Key" and "k-2" in other.json["error"][
        "message"]
    assert _count(container, SupportRequest) == 1


def test_a_key_is_the_merchants_own(client, container):
    """Another merchant using the same key string files its own request."""
    file_refund(client, MERCHANT, CLAIM, key="shared")
    other = file_refund(client, "cloudbehind", CLAIM, key="shared")
    assert other.status_code == 202 and "Idempotent-Replayed" not in other.headers
    assert _count(container, SupportRequest) == 2


def test_a_second_claim_without_a_key_answers_409_naming_the_first(client, container):
    """The payment already has an open refund request: 409 with its id; nothing filed."""
    first = file_refund(client, MERCHANT, CLAIM)
    second = file_refund(client, MERCHANT, CLAIM, reason="again")
    assert second.status_code == 409
    assert second.json["error"]["code"] == "duplicate_request"
    assert second.json["error"]["existing"] == first.json["id"]
    assert _count(container, SupportRequest) == 1


def test_a_malformed_key_is_a_400_naming_the_header(client, container):
    """Empty, over-long or control characters: 400 with field Idempotency-Key."""
    for key in ("x" * 256, "tab\there"):
        resp = file_refund(client, MERCHANT, CLAIM, key=key)
        assert resp.status_code == 400 and resp.json["error"]["field"] == "Idempotency-Key"
    assert _count(container, SupportRequest) == 0


def test_usage_with_a_key_is_recorded_once(client, container):
    """Every POST takes the header: a repeated usage report is stored once."""
    body = {"account": "cus_1", "bandwidth_bytes": 5, "sessions": 1}
    for _ in range(3):
        resp = client.post("/v1/usage", json=body, headers=headers(MERCHANT,
                                                                   **{"Idempotency-Key": "u"}))
        assert resp.status_code == 201
    assert _count(container, UsageReport) == 1


def test_a_failed_request_is_not_remembered(client, container):
    """An answer that changed nothing (a 400) is not stored: the key can be used again."""
    bad = client.post("/v1/usage", json={"account": "cus_1"},
                      headers=headers(MERCHANT, **{"Idempotency-Key": "retry"}))
    assert bad.status_code == 400
    good = client.post("/v1/usage", json={"account": "cus_1", "bandwidth_bytes": 1,
                                          "sessions": 1},
                       headers=headers(MERCHANT, **{"Idempotency-Key": "retry"}))
    assert good.status_code == 201 and "Idempotent-Replayed" not in good.headers


def test_keys_are_kept_72_hours_then_forgotten(client, container):
    """The clock deletes keys older than 72 hours and keeps younger ones."""
    file_refund(client, MERCHANT, CLAIM, key="old")
    now = datetime.now(UTC)
    assert forget_idempotency_keys(container, now + timedelta(hours=71)) == 0
    assert _count(container, IdempotencyKey) == 1
    assert forget_idempotency_keys(container, now + timedelta(hours=73)) == 1
    assert _count(container, IdempotencyKey) == 0
