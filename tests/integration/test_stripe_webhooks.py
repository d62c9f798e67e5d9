"""Stripe deliveries: verified on the raw bytes, stored once, acknowledged, never trusted
blindly."""

from __future__ import annotations

import json
import time

from sqlalchemy import func, select

from ledger.models import InboxEvent, InboxStatus
from sandbox import samples
from service.bootstrap import Container
from tests.support import stripe as sig
from tests.support.delivery import drain_everything, settle


def _event(key: str = "wh", event_type: str = "charge.succeeded", **kw):
    return samples.stripe_event(event_type, samples.Scenario(key=key), **kw)


def _stored(container: Container) -> list[InboxEvent]:
    settle(container)  # what the Redis inbox holds, into the table, as a drain would
    with container.sessions() as s:
        return list(s.scalars(select(InboxEvent).order_by(InboxEvent.id)))


def test_a_signed_event_is_stored_and_acknowledged(client, container):
    """A correctly signed event answers 200 and lands in the inbox as pending."""
    event = _event()
    resp = sig.post(client, event)
    assert resp.status_code == 200, resp.json
    assert resp.json == {"received": True, "event_id": event["id"], "duplicate": False,
                         "status": "pending"}
    (row,) = _stored(container)
    assert (row.merchant, row.provider, row.event_id) == ("theopenhost", "stripe", event["id"])
    assert row.raw_body == sig.body_of(event)
    assert row.headers["Stripe-Signature"].startswith("t=")
    assert row.object_ref == event["data"]["object"]["id"]


def test_the_raw_bytes_are_verified_not_a_reserialisation(client, container):
    """Odd whitespace and key order survive: the signature covers the bytes as sent."""
    raw = json.dumps(_event(), separators=(" ,", ":  ")).encode()
    assert sig.post(client, raw).status_code == 200
    assert _stored(container)[0].raw_body == raw


def test_every_configured_secret_is_accepted_for_rotation(client, container):
    """The previous secret still verifies while a merchant rolls its signing secret."""
    for i, secret in enumerate(["whsec_test_oneclick_current", "whsec_test_oneclick_previous"]):
        resp = sig.post(client, _event(f"rot{i}"), merchant="oneclick", secret=secret)
        assert resp.status_code == 200
    assert len(_stored(container)) == 2


def test_five_deliveries_store_one_event_and_say_duplicate(client, container):
    """Redelivery answers 2xx, says duplicate, and keeps one row counting the deliveries."""
    event = _event()
    answers = [sig.post(client, event).json for _ in range(5)]
    assert [a["duplicate"] for a in answers] == [False, True, True, True, True]
    (row,) = _stored(container)
    assert row.deliveries == 5


def test_a_tampered_body_is_refused_and_nothing_stored(client, container):
    """One changed byte after signing gets 400 bad_signature."""
    raw = sig.body_of(_event())
    header = sig.signature(raw)
    resp = sig.post(client, raw.replace(b'"amount": 1999', b'"amount": 1'), header=header)
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "bad_signature"
    assert _stored(container) == []


def test_a_wrong_secret_is_refused(client, container):
    """A signature by a secret the merchant does not hold gets 400."""
    resp = sig.post(client, _event(), secret="whsec_someone_else")
    assert resp.status_code == 400 and resp.json["error"]["code"] == "bad_signature"
    assert _stored(container) == []


def test_a_stale_timestamp_is_refused(client, container):
    """A valid signature older than the 300-second tolerance is a replay: 400."""
    resp = sig.post(client, _event(), timestamp=int(time.time()) - 301)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "stale_timestamp"
    assert _stored(container) == []


def test_a_replay_inside_the_tolerance_is_a_harmless_duplicate(client, container):
    """The same signed bytes resent within 300 seconds store nothing new."""
    raw = sig.body_of(_event())
    header = sig.signature(raw, timestamp=int(time.time()) - 200)
    assert sig.post(client, raw, header=header).json["duplicate"] is False
    assert sig.post(client, raw, header=header).json["duplicate"] is True
    assert len(_stored(container)) == 1


def test_malformed_or_missing_headers_are_refused(client, container):
    """No header, garbage, or no v1 signature each get 400 naming the problem."""
    raw = sig.body_of(_event())
    for header, code in [("", "missing_header"), ("garbage", "malformed_header"),
                         (f"t={int(time.time())},v0=abc", "malformed_header")]:
        resp = sig.post(client, raw, header=header)
        assert resp.status_code == 400, header
        assert resp.json["error"]["code"] == code
    assert _stored(container) == []


def test_signed_but_malformed_json_is_refused(client, container):
    """A body that verifies but is not a Stripe event gets 400 malformed_json."""
    for raw in [b"not json", b"[1, 2]", b'{"id": "evt_1"}', b'{"id": 5, "type": "x"}']:
        resp = sig.post(client, raw)
        assert resp.status_code == 400, raw
        assert resp.json["error"]["code"] == "malformed_json"
    assert _stored(container) == []


def test_an_unknown_merchant_gets_404(client, container):
    """A merchant name that is not configured is not found."""
    assert sig.post(client, _event(), merchant="nobody").status_code == 404


def test_a_body_over_the_limit_gets_413(client, container, settings):
    """A body over the configured limit is refused before it is read."""
    raw = b'{"pad": "' + b"x" * settings.body_limit + b'"}'
    resp = sig.post(client, raw)
    assert resp.status_code == 413
    assert resp.json["error"]["code"] == "request_entity_too_large"


def test_a_livemode_event_for_a_sandbox_merchant_is_stored_but_ignored(client, container):
    """An event whose livemode does not match the merchant is kept for audit, never acted on."""
    resp = sig.post(client, {**_event(), "livemode": True})
    assert resp.status_code == 200 and resp.json["status"] == "ignored"
    (row,) = _stored(container)
    assert row.status == InboxStatus.IGNORED
    assert row.status_reason is not None and "livemode" in row.status_reason
    drain_everything(container)
    (row,) = _stored(container)
    assert row.status == InboxStatus.IGNORED and row.attempts == 0  # never applied


def test_an_unreachable_database_answers_503_so_the_provider_retries(redis_url, other_container):
    """With the database inbox, if the inbox cannot be written the answer is 503, never a
    2xx."""
    from gateway.app import create_app

    down = other_container("postgresql://gateway@127.0.0.1:1/none", redis_url, inbox="database")
    client = create_app(container=down).test_client()
    resp = sig.post(client, _event())
    assert resp.status_code == 503
    assert resp.json["error"]["code"] == "storage_unavailable"


def test_an_unreachable_redis_answers_503_with_the_redis_inbox(database_url, other_container):
    """With the Redis inbox, Redis is where the event is recorded: if it does not answer, the
    answer is 503 (the provider retries), never a 2xx for an event recorded nowhere."""
    from gateway.app import create_app

    down = other_container(database_url, "redis://127.0.0.1:1/0", inbox="redis")
    resp = sig.post(create_app(container=down).test_client(), _event())
    assert resp.status_code == 503
    assert resp.json["error"]["code"] == "storage_unavailable"


def test_redis_down_after_the_commit_still_acknowledges(database_url, container,
                                                         other_container):
    """With the database inbox, the event is safe in the table, so the answer is 200 and the
    sweeper enqueues it later."""
    from gateway.app import create_app
    from workers.sweeper import sweep

    down = other_container(database_url, "redis://127.0.0.1:1/0", inbox="database")
    client = create_app(container=down).test_client()
    resp = sig.post(client, _event())
    assert resp.status_code == 200
    with container.sessions() as s:
        assert s.scalar(select(func.count()).select_from(InboxEvent)) == 1
    assert sweep(container) == 1
    (row,) = _stored(container)
    assert container.redis.lrange(f"gateway:inbox:{row.partition}", 0, -1) == [
        str(row.id).encode()]
