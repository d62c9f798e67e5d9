"""No webhook secret, API key, admin token or signature value ever reaches a log record."""

from __future__ import annotations

import logging

import pytest

from sandbox import samples
from service.config import Settings
from tests.support import stripe as sig
from tests.support.delivery import PAYPAL_MERCHANT, PAYPAL_WEBHOOK_ID
from tests.support.paypal import shared_signer

TOKEN = "test-admin-theopenhost-003"


def _secrets(settings: Settings) -> list[str]:
    out = []
    for m in settings.merchants.values():
        out += [m.admin_token, *m.stripe.webhook_secrets, m.stripe.api_key,
                m.paypal.client_id, m.paypal.client_secret]
    return [s for s in out if s]


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Everything a handler could print: message, arguments, traceback, extra fields."""
    parts = []
    for record in caplog.records:
        parts += [record.getMessage(), repr(record.args), record.exc_text or "",
                  repr(vars(record))]
    return "\n".join(parts)


def test_deliveries_refusals_and_admin_calls_log_no_secret(client, container, settings, caplog):
    """A delivery, refusals of each kind and admin calls, logged at DEBUG: no secret in them."""
    caplog.set_level(logging.DEBUG)
    event = samples.stripe_event("charge.succeeded", samples.Scenario(key="logs"))
    raw = sig.body_of(event)
    good = sig.signature(raw)
    assert sig.post(client, raw, header=good).status_code == 200
    forged = good[:-4] + "0000"
    assert sig.post(client, raw, header=forged).status_code == 400
    assert sig.post(client, raw, secret="whsec_test_cloudbehind_current").status_code == 400
    paypal = sig.body_of(samples.paypal_event("PAYMENT.SALE.COMPLETED", samples.Scenario(
        key="logs", payment_method="paypal")))
    pp_headers = shared_signer().headers(paypal, PAYPAL_WEBHOOK_ID)
    assert client.post(f"/webhooks/{PAYPAL_MERCHANT}/paypal", data=paypal, headers=pp_headers,
                       content_type="application/json").status_code == 200
    bad_pp = pp_headers | {"PAYPAL-TRANSMISSION-ID": "forged"}
    assert client.post(f"/webhooks/{PAYPAL_MERCHANT}/paypal", data=paypal, headers=bad_pp,
                       content_type="application/json").status_code == 400
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.post("/v1/usage", json={"account": "cus_1", "bandwidth_bytes": 1,
                                          "sessions": 1}, headers=auth).status_code == 201
    assert client.post("/v1/usage", json={"account": 5}, headers=auth).status_code == 400
    assert client.get("/v1/decisions/dec_x", headers={
        "Authorization": f"Bearer {TOKEN}x"}).status_code == 401
    assert caplog.records, "the calls above should have logged something"

    logged = _logged(caplog)
    signatures = [good.split("v1=")[1], forged.split("v1=")[1],
                  pp_headers["PAYPAL-TRANSMISSION-SIG"], bad_pp["PAYPAL-TRANSMISSION-SIG"]]
    for value in _secrets(settings) + signatures:
        assert value not in logged, f"{value[:12]}... was logged"


def test_error_bodies_carry_no_secret_or_token(client, container, settings):
    """The answers to refused deliveries and admin calls do not echo what was sent as a secret."""
    raw = b'{"id": "evt_1"}'
    answers = [
        sig.post(client, raw, header=f"t=1,v1={'ab' * 32}"),
        sig.post(client, raw, secret="whsec_test_theopenhost_current"),
        client.get("/v1/reviews", headers={"Authorization": f"Bearer {TOKEN}"[:-1]}),
        client.get("/v1/reviews", headers={"Authorization": f"Basic {TOKEN}"}),
        client.post("/v1/usage", data="{", content_type="application/json",
                    headers={"Authorization": f"Bearer {TOKEN}"}),
    ]
    for resp in answers:
        assert resp.status_code >= 400
        text = resp.get_data(as_text=True)
        assert not any(s in text for s in _secrets(settings)), text
        assert "ab" * 32 not in text
