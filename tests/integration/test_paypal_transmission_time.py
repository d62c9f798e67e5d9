"""PAYPAL-TRANSMISSION-TIME at the webhook: a stale, future or malformed time gets 400 under its
code, is counted under that reason, fetches nothing and stores nothing; a fresh one is stored."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import responses
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from sqlalchemy import func, select

from ledger.models import InboxEvent
from sandbox import samples
from sandbox.devcerts import seed_cert_cache
from service.bootstrap import Container
from service.errors import VerificationError
from tests.support.delivery import PAYPAL_MERCHANT, PAYPAL_WEBHOOK_ID, settle
from tests.support.paypal import shared_signer


def _raw(key: str) -> bytes:
    event = samples.paypal_event("PAYMENT.SALE.COMPLETED",
                                 samples.Scenario(key=key, payment_method="paypal"))
    return json.dumps(event, separators=(",", ":")).encode()


def _post(client: FlaskClient, raw: bytes, headers: dict[str, str]):
    return client.post(f"/webhooks/{PAYPAL_MERCHANT}/paypal", data=raw, headers=headers,
                       content_type="application/json")


def _stored(container: Container) -> int:
    settle(container)
    with container.sessions() as s:
        return s.scalar(select(func.count()).select_from(InboxEvent)) or 0


def _rejected(reason: str) -> float:
    labels = {"provider": "paypal", "reason": reason}
    return REGISTRY.get_sample_value("gateway_webhooks_rejected_total", labels) or 0.0


def _ago(seconds: int) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


REFUSED: dict[str, tuple[str, Callable[[int], datetime]]] = {
    # Whole seconds are signed, so "tolerance + 2" is past the tolerance however long this takes.
    "stale": ("stale_transmission", lambda tolerance: _ago(tolerance + 2)),
    # A genuine delivery captured yesterday, for an event never stored, sent again today.
    "a day old": ("stale_transmission", lambda tolerance: _ago(86_400)),
    "future": ("future_transmission", lambda tolerance: _ago(-(tolerance + 60))),
}


@pytest.mark.parametrize("case", REFUSED.keys())
def test_a_transmission_time_outside_the_tolerance_gets_400_and_nothing_is_stored(
        client, container, case):
    code, when = REFUSED[case]
    raw = _raw(f"time-{case}")
    headers = shared_signer().headers(
        raw, PAYPAL_WEBHOOK_ID, transmission_time=when(container.settings.paypal_tolerance))
    before = _rejected(code)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as no_network:
        resp = _post(client, raw, headers)
        assert len(no_network.calls) == 0
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == code
    assert _rejected(code) - before == 1
    assert _stored(container) == 0


@pytest.mark.parametrize("value", ["yesterday", "2017-03-30T20:04:05", "1490904245",
                                   "2017-02-30T20:04:05Z"])
def test_a_malformed_transmission_time_gets_400_and_nothing_is_stored(client, container, value):
    raw = _raw("time-malformed")
    headers = shared_signer().headers(raw, PAYPAL_WEBHOOK_ID) | {
        "PAYPAL-TRANSMISSION-TIME": value}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as no_network:
        resp = _post(client, raw, headers)
        assert len(no_network.calls) == 0
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "malformed_header"
    assert "PAYPAL-TRANSMISSION-TIME" in resp.json["error"]["message"]
    assert _stored(container) == 0


def test_a_delivery_inside_the_tolerance_is_stored(client, container):
    """A little old is fine: PayPal's clock, queueing and the network all take time."""
    raw = _raw("time-fresh")
    headers = shared_signer().headers(
        raw, PAYPAL_WEBHOOK_ID, transmission_time=_ago(container.settings.paypal_tolerance - 30))
    resp = _post(client, raw, headers)
    assert resp.status_code == 200 and resp.json["duplicate"] is False
    assert _stored(container) == 1


def test_the_configured_tolerance_reaches_the_verifier(other_container, database_url, redis_url):
    """GATEWAY_PAYPAL_TOLERANCE (here 60) is what the gateway's verifier applies."""
    container = other_container(database_url, redis_url, paypal_tolerance=60)
    signer = shared_signer()
    seed_cert_cache(container.settings.data_dir / "paypal-certs", signer.cert_url,
                    signer.cert_pem)
    verifier = container.paypal_local_verifier
    raw = _raw("time-setting")
    verifier.verify(signer.headers(raw, PAYPAL_WEBHOOK_ID, transmission_time=_ago(50)), raw,
                    PAYPAL_WEBHOOK_ID)
    with pytest.raises(VerificationError) as caught:
        verifier.verify(signer.headers(raw, PAYPAL_WEBHOOK_ID, transmission_time=_ago(62)), raw,
                        PAYPAL_WEBHOOK_ID)
    assert caught.value.code == "stale_transmission"
