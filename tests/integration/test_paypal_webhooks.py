"""PayPal deliveries through the endpoint: verified locally against the configured CA."""

from __future__ import annotations

import json
import logging
from dataclasses import replace

import responses
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import InboxEvent
from sandbox import samples
from service.bootstrap import Container
from tests.support.delivery import PAYPAL_MERCHANT, PAYPAL_WEBHOOK_ID, deliver, settle
from tests.support.paypal import shared_signer


def _raw(key: str = "pp") -> bytes:
    event = samples.paypal_event("PAYMENT.SALE.COMPLETED",
                                 samples.Scenario(key=key, payment_method="paypal"))
    return json.dumps(event, separators=(",", ":")).encode()


def _post(client: FlaskClient, raw: bytes, headers: dict[str, str]):
    return client.post(f"/webhooks/{PAYPAL_MERCHANT}/paypal", data=raw, headers=headers,
                       content_type="application/json")


def _stored(container: Container) -> list[InboxEvent]:
    settle(container)
    with container.sessions() as s:
        return list(s.scalars(select(InboxEvent)))


def test_an_event_signed_by_a_certificate_of_the_configured_ca_is_stored(client, container):
    """A signature by a test certificate chaining to the configured CA verifies and is stored."""
    raw = _raw()
    resp = _post(client, raw, shared_signer().headers(raw, PAYPAL_WEBHOOK_ID))
    assert resp.status_code == 200 and resp.json["duplicate"] is False
    (row,) = _stored(container)
    assert row.raw_body == raw and row.livemode is False
    assert row.headers["Paypal-Transmission-Id"]


def test_the_certificate_is_fetched_once_from_paypal_and_then_cached(client, container):
    """With no cached copy the certificate is fetched from its PayPal URL, then reused."""
    signer = shared_signer()
    for cached in (container.settings.data_dir / "paypal-certs").glob("*.pem"):
        cached.unlink()
    with responses.RequestsMock() as rsps:
        rsps.get(signer.cert_url, body=signer.cert_pem)
        for key in ("a", "b"):
            raw = _raw(key)
            assert _post(client, raw, signer.headers(raw, PAYPAL_WEBHOOK_ID)).status_code == 200
        assert len(rsps.calls) == 1


def test_a_cert_url_off_paypal_hosts_is_refused_without_any_request(client, container):
    """The certificate URL is checked before any fetch: no request leaves the gateway."""
    raw = _raw()
    headers = shared_signer().headers(raw, PAYPAL_WEBHOOK_ID)
    for url in ["https://evil.example/v1/notifications/certs/CERT-1",
                "http://api.paypal.com/v1/notifications/certs/CERT-1",
                "https://api.paypal.com.evil.example/v1/notifications/certs/CERT-1",
                "https://api.paypal.com:8443/v1/notifications/certs/CERT-1",
                "https://169.254.169.254/latest/meta-data"]:
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            resp = _post(client, raw, {**headers, "PAYPAL-CERT-URL": url})
            assert len(rsps.calls) == 0
        assert resp.status_code == 400, url
        assert resp.json["error"]["code"] == "cert_url_not_allowed"
    assert _stored(container) == []


def test_a_tampered_body_or_a_wrong_webhook_id_is_refused(client, container):
    """The signature covers the raw body and the merchant's webhook id."""
    raw = _raw()
    signer = shared_signer()
    tampered = raw.replace(b'"19.99"', b'"1.99"')
    assert tampered != raw
    resp = _post(client, tampered, signer.headers(raw, PAYPAL_WEBHOOK_ID))
    assert resp.status_code == 400 and resp.json["error"]["code"] == "bad_signature"
    resp = _post(client, raw, signer.headers(raw, "WH-SOME-OTHER-WEBHOOK"))
    assert resp.status_code == 400 and resp.json["error"]["code"] == "bad_signature"
    assert _stored(container) == []


def test_missing_paypal_headers_are_refused(client, container):
    """Each missing transmission header gets 400 naming it."""
    raw = _raw()
    headers = shared_signer().headers(raw, PAYPAL_WEBHOOK_ID)
    for name in ["PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-SIG", "PAYPAL-CERT-URL"]:
        resp = _post(client, raw, {k: v for k, v in headers.items() if k != name})
        assert resp.status_code == 400 and resp.json["error"]["code"] == "missing_header"
        assert name.lower() in resp.json["error"]["message"].lower()
    assert _stored(container) == []


def test_the_configured_ca_is_read_at_start_up_and_held_if_its_file_goes(container, tmp_path):
    """A CA file removed (or rotated to garbage) after start-up does not turn each PayPal
    delivery into a 500: the app read the trust anchors when it was built."""
    from gateway.app import create_app

    ca = tmp_path / "held-ca.pem"
    ca.write_bytes(shared_signer().ca_pem)
    held = Container(replace(container.settings, paypal_ca_file=ca))
    try:
        client = create_app(container=held).test_client()
        ca.unlink()
        raw = _raw("held")
        resp = _post(client, raw, shared_signer().headers(raw, PAYPAL_WEBHOOK_ID))
        assert resp.status_code == 200, resp.get_data(as_text=True)
    finally:
        held.close()
    assert [row.raw_body for row in _stored(container)] == [raw]


def test_a_worker_started_after_its_ca_file_went_answers_paypal_503_and_stripe_as_ever(
        container, tmp_path):
    """gunicorn starts a worker again after one dies; if the CA file has gone meanwhile, that
    worker still starts (no refusal to boot, which stops the whole server): each PayPal
    delivery is answered 503, so PayPal delivers it again, with nothing about the server in
    the answer; Stripe deliveries go on; once the file is back, PayPal's are verified again."""
    from gateway.app import create_app

    ca = tmp_path / "gone-ca.pem"
    held = Container(replace(container.settings, paypal_ca_file=ca))
    try:
        client = create_app(container=held).test_client()
        raw = _raw("gone")
        headers = shared_signer().headers(raw, PAYPAL_WEBHOOK_ID)
        resp = _post(client, raw, headers)
        assert resp.status_code == 503
        assert resp.json["error"]["code"] == "verification_unavailable"
        assert str(tmp_path) not in resp.get_data(as_text=True)
        deliver(client, "stripe", samples.stripe_event("charge.succeeded",
                                                       samples.Scenario(key="stripe-on")))
        ca.write_bytes(shared_signer().ca_pem)
        assert _post(client, raw, headers).status_code == 200
    finally:
        held.close()
    assert raw in [row.raw_body for row in _stored(container)]


def test_a_certificate_cache_that_cannot_be_written_costs_a_fetch_not_the_delivery(
        container, tmp_path, caplog):
    """The cache folder is only a cache: one that cannot be written (here a file stands where
    the folder should be) leaves the fetched certificate in the process's memory, verified,
    with a warning; the delivery is stored and the next one asks PayPal nothing."""
    from gateway.app import create_app

    data_dir = tmp_path / "unwritable"
    data_dir.mkdir()
    (data_dir / "paypal-certs").write_text("not a folder")
    held = Container(replace(container.settings, data_dir=data_dir))
    signer = shared_signer()
    try:
        client = create_app(container=held).test_client()
        with responses.RequestsMock() as rsps, caplog.at_level(logging.WARNING):
            rsps.get(signer.cert_url, body=signer.cert_pem)
            for key in ("unwritable-a", "unwritable-b"):
                raw = _raw(key)
                resp = _post(client, raw, signer.headers(raw, PAYPAL_WEBHOOK_ID))
                assert resp.status_code == 200, resp.get_data(as_text=True)
            assert len(rsps.calls) == 1
    finally:
        held.close()
    (warning,) = [r.getMessage() for r in caplog.records if "not cached" in r.getMessage()]
    # which certificate, which folder, and the system's reason
    assert warning.startswith(f"PayPal certificate {signer.cert_url} not cached in "
                              f"{data_dir / 'paypal-certs'}: [Errno "), warning
    assert len(_stored(container)) == 2
