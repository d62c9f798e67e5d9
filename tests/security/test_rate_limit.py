"""Failed signature checks are limited per source address (and merchant).

A source that fails ``signature_failure_limit`` times within the window gets 429 with
Retry-After until the window ends, for every delivery, even a validly signed one: it is refused
before verification, since telling a good delivery from a guess is the work being limited, and
a real provider retries a 429 later. Other sources, other merchants and 503s are not affected.
"""

from __future__ import annotations

import logging
import time

import pytest
import responses
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from gateway.ratelimit import source_of
from ledger.models import InboxEvent
from sandbox import samples
from service.bootstrap import Container
from tests.support import stripe as sig
from tests.support.delivery import PAYPAL_MERCHANT, PAYPAL_WEBHOOK_ID
from tests.support.paypal import REFUND_EVENT, shared_signer

SETTINGS = {"signature_failure_limit": 3, "signature_failure_window": 2}
ATTACKER = {"REMOTE_ADDR": "203.0.113.7"}
PROVIDER = {"REMOTE_ADDR": "198.51.100.20"}


def _event(key: str) -> bytes:
    return sig.body_of(samples.stripe_event("charge.succeeded", samples.Scenario(key=key)))


def _send(client: FlaskClient, raw: bytes, header: str, source: dict[str, str],
          merchant: str = "theopenhost"):
    return client.post(f"/webhooks/{merchant}/stripe", data=raw, environ_base=source,
                       headers={"Stripe-Signature": header}, content_type="application/json")


def _forge(client: FlaskClient, source: dict[str, str], times: int,
           merchant: str = "theopenhost") -> list[int]:
    raw = _event("forged")
    return [_send(client, raw, f"t={int(time.time())},v1={'0' * 64}", source, merchant).status_code
            for _ in range(times)]


def _stored(container: Container) -> int:
    with container.sessions() as s:
        return s.scalar(select(func.count()).select_from(InboxEvent)) or 0


def test_a_source_over_the_limit_gets_429_with_retry_after_even_for_a_valid_delivery(
        client, container):
    """Three failures, then 429 before verifying; its valid delivery waits too, unstored."""
    refused = {"provider": "stripe", "reason": "too_many_failures"}
    before = REGISTRY.get_sample_value("gateway_webhooks_rejected_total", refused) or 0.0
    assert _forge(client, ATTACKER, 3) == [400, 400, 400]
    resp = _forge(client, ATTACKER, 1)
    assert resp == [429]
    assert REGISTRY.get_sample_value("gateway_webhooks_rejected_total", refused) == before + 1
    raw = _event("genuine")
    limited = _send(client, raw, sig.signature(raw), ATTACKER)
    assert limited.status_code == 429
    assert limited.json["error"]["code"] == "too_many_failures"
    assert 1 <= int(limited.headers["Retry-After"]) <= SETTINGS["signature_failure_window"]
    assert _stored(container) == 0


def test_other_sources_and_other_merchants_are_unaffected(client, container):
    """The provider's own address and the attacker's deliveries to another merchant go through."""
    _forge(client, ATTACKER, 4)
    raw = _event("genuine")
    assert _send(client, raw, sig.signature(raw), PROVIDER).status_code == 200
    other = _event("other-merchant")
    header = sig.signature(other, "whsec_test_oneclick_current")
    assert _send(client, other, header, ATTACKER, merchant="oneclick").status_code == 200


def test_the_limit_lifts_when_the_window_ends(client, container):
    """After the window (2 s here) the source is verified again."""
    assert _forge(client, ATTACKER, 4) == [400, 400, 400, 429]
    time.sleep(SETTINGS["signature_failure_window"] + 0.2)
    raw = _event("after")
    assert _send(client, raw, sig.signature(raw), ATTACKER).status_code == 200


def test_verification_unavailable_is_not_counted(client, container):
    """503s (a certificate that cannot be fetched) are our outage, not the sender's failure."""
    signer = shared_signer()
    url = "https://api.paypal.com/v1/notifications/certs/CERT-UNREACHABLE"
    headers = signer.headers(REFUND_EVENT, PAYPAL_WEBHOOK_ID) | {"PAYPAL-CERT-URL": url}
    with responses.RequestsMock(assert_all_requests_are_fired=False):
        codes = [client.post(f"/webhooks/{PAYPAL_MERCHANT}/paypal", data=REFUND_EVENT,
                             headers=headers, environ_base=ATTACKER,
                             content_type="application/json").status_code for _ in range(6)]
    assert codes == [503] * 6


def test_a_forwarded_for_header_is_ignored_unless_proxies_are_trusted(client, container):
    """Without GATEWAY_TRUSTED_PROXIES a client cannot dodge the limit by naming another address."""
    raw = _event("spoof")
    codes = [client.post("/webhooks/theopenhost/stripe", data=raw, environ_base=ATTACKER,
                         headers={"Stripe-Signature": f"t=1,v1={'0' * 64}",
                                  "X-Forwarded-For": f"192.0.2.{i}"},
                         content_type="application/json").status_code for i in range(5)]
    assert codes == [400, 400, 400, 429, 429]


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_source(database_url, redis_url,
                                                                     container, other_container):
    """With one trusted proxy, each client behind it is limited on its own."""
    from gateway.app import create_app

    app = create_app(container=other_container(database_url, redis_url, trusted_proxies=1,
                                               **SETTINGS))
    client = app.test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.2"}

    def send(forwarded: str, header: str, raw: bytes) -> int:
        return client.post("/webhooks/theopenhost/stripe", data=raw, environ_base=proxy,
                           headers={"Stripe-Signature": header, "X-Forwarded-For": forwarded},
                           content_type="application/json").status_code

    forged = _event("forged")
    assert [send("203.0.113.7", "t=1,v1=00", forged) for _ in range(4)] == [400, 400, 400, 429]
    raw = _event("behind-proxy")
    assert send("198.51.100.20", sig.signature(raw), raw) == 200


def test_with_redis_down_the_limiter_lets_deliveries_through_and_says_so_once(
        database_url, container, other_container, caplog):
    """Ingest matters more than throttling: no 429, no 500, one warning. (With the database
    inbox: with the Redis inbox, a Redis that is down is an inbox that is down, 503.)"""
    from gateway.app import create_app

    down = other_container(database_url, "redis://127.0.0.1:1/0", inbox="database", **SETTINGS)
    client = create_app(container=down).test_client()
    caplog.set_level(logging.WARNING, logger="gateway.ratelimit")
    assert _forge(client, ATTACKER, 6) == [400] * 6
    raw = _event("redis-down")
    assert _send(client, raw, sig.signature(raw), ATTACKER).status_code == 200
    warnings = [r for r in caplog.records if r.name == "gateway.ratelimit"]
    assert len(warnings) == 1 and "Redis" in warnings[0].getMessage()


@pytest.mark.parametrize(("address", "source"), [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    (None, "unknown"),
    ("not an address", "not an address"),
])
def test_an_ipv6_client_is_counted_by_its_64(address, source):
    """One host can rotate through a whole /64, so the /64 is the source."""
    assert source_of(address) == source


def test_another_web_process_limits_a_source_after_at_most_one_more_failure(
        database_url, redis_url, client, container, other_container):
    """Each web process looks the count up for the sources it has seen fail; one that has not
    seen this source fail yet verifies once more, and its failure makes it look the count up."""
    from gateway.app import create_app

    assert _forge(client, ATTACKER, 4) == [400, 400, 400, 429]
    second = create_app(container=other_container(database_url, redis_url, **SETTINGS))
    assert _forge(second.test_client(), ATTACKER, 2) == [400, 429]
