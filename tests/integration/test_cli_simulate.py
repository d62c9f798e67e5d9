"""`gateway simulate` tells the user what to do when the gateway refuses a sample's signature."""

from __future__ import annotations

import pytest
import responses

from cli.main import run as gateway


@responses.activate
def test_a_paypal_sample_refused_for_its_certificate_says_how_to_start_serve(
        tmp_path, monkeypatch: pytest.MonkeyPatch, capsys):
    """A `serve` started without GATEWAY_PAYPAL_CA_FILE answers 503 cert_fetch_failed; the
    simulator names the variable and the development CA to set it to."""
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GATEWAY_MERCHANTS_FILE", raising=False)
    responses.post("http://127.0.0.1:8000/webhooks/theopenhost/paypal", status=503,
                   json={"error": {"code": "cert_fetch_failed",
                                   "message": "could not fetch the signing certificate"}})
    assert gateway(["simulate", "paypal", "PAYMENT.SALE.COMPLETED",
                    "--merchant", "theopenhost"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert f"GATEWAY_PAYPAL_CA_FILE={tmp_path / 'devcerts' / 'ca.pem'}" in err


@responses.activate
def test_a_stripe_sample_refused_otherwise_gets_no_hint(tmp_path, monkeypatch, capsys):
    """The hint is for the certificate only: another refusal is shown as the gateway gave it."""
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GATEWAY_MERCHANTS_FILE", raising=False)
    responses.post("http://127.0.0.1:8000/webhooks/theopenhost/stripe", status=400,
                   json={"error": {"code": "bad_signature", "message": "no match"}})
    assert gateway(["simulate", "stripe", "charge.succeeded", "--merchant", "theopenhost"]) == 1
    captured = capsys.readouterr()
    assert "bad_signature" in captured.out and captured.err == ""
