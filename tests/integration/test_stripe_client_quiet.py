"""Calls to Stripe say nothing about this host: no telemetry id kept on disk, none sent, and no
request lines logged at INFO by stripe-python."""

from __future__ import annotations

import json

import responses

from adapters.base import PaymentTarget
from adapters.stripe_adapter import StripeAdapter
from policy.money import Money
from service.config import StripeSettings


@responses.activate
def test_a_stripe_call_keeps_and_sends_no_telemetry_and_logs_no_request_line(
        tmp_path, monkeypatch, log_lines):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    responses.post("https://api.stripe.com/v1/refunds", json={
        "id": "re_quiet", "object": "refund", "status": "succeeded", "amount": 500,
        "currency": "usd", "charge": "ch_quiet"})
    adapter = StripeAdapter(StripeSettings(api_key="sk_test_quiet"))
    adapter.refund(PaymentTarget("stripe", "charge", "ch_quiet"), Money(500, "USD"),
                   "test", key="act_quiet", metadata={})
    sent = responses.calls[0].request.headers
    agent = json.loads(sent["X-Stripe-Client-User-Agent"])
    assert "telemetry_id" not in agent and "platform" not in agent
    assert "X-Stripe-Client-Telemetry" not in sent
    assert not (tmp_path / "stripe" / "telemetry_id").exists()
    assert not [line for line in log_lines() if line["logger"] == "stripe"]
