"""The Procfile's web line, run as written, serves the app."""

from __future__ import annotations

import requests

from sandbox import samples
from tests.e2e.conftest import process_env, procfile_line, wait_ready
from tests.support import stripe as sig
from tests.support.outages import free_port


def test_gunicorn_serves_the_app_from_theprocfile_line(container, spawn):
    """The web: line starts gunicorn; health answers and a signed event is stored."""
    import os
    import sys

    port = free_port()
    env = process_env(container.settings, PORT=str(port))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    spawn([procfile_line("web")], env, "web", shell=True)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
    event = samples.stripe_event("charge.succeeded", samples.Scenario(key="gunicorn"))
    raw = sig.body_of(event)
    resp = requests.post(f"{base}/webhooks/theopenhost/stripe", data=raw, timeout=5,
                         headers={"Stripe-Signature": sig.signature(raw),
                                  "Content-Type": "application/json"})
    assert resp.status_code == 200 and resp.json()["event_id"] == event["id"]


def test_simulate_sends_signed_samples_that_a_running_gateway_accepts(container, spawn):
    """`gateway simulate` signs a realistic Stripe or PayPal event the way the provider does."""
    import json
    import os
    import subprocess
    import sys

    from sandbox.devcerts import load_or_create_dev_signer

    data_dir = container.settings.data_dir
    load_or_create_dev_signer(data_dir)  # the development CA the gateway is told to trust
    port = free_port()
    env = process_env(container.settings, PORT=str(port),
                      GATEWAY_PAYPAL_CA_FILE=str(data_dir / "devcerts" / "ca.pem"))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    spawn([procfile_line("web")], env, "web", shell=True)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    for provider, event_type in [("stripe", "invoice.paid"),
                                 ("paypal", "BILLING.SUBSCRIPTION.ACTIVATED")]:
        out = subprocess.run(
            [sys.executable, "-m", "cli.main", "simulate", provider, event_type,
             "--merchant", "cloudbehind", "--url", base],
            env=env, capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr + out.stdout
        answer = json.loads(out.stdout)
        assert answer["status"] == 200 and answer["response"]["duplicate"] is False

