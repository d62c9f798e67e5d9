"""The Procfile's web line, run as written, serves the app."""

from __future__ import annotations

import socket
import time

import requests

from service import samples
from tests.e2e.conftest import ROOT, process_env
from tests.support import stripe as sig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _procfile_line(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} line in the Procfile")


def test_gunicorn_serves_the_app_from_the_procfile_line(container, spawn):
    """The web: line starts gunicorn; health answers and a signed event is stored."""
    import os
    import sys

    port = _free_port()
    env = process_env(container.settings, PORT=str(port))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    spawn([_procfile_line("web")], env, "web", shell=True)
    base = f"http://127.0.0.1:{port}"
    _wait_ready(base)
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

    from service.devcerts import load_or_create_dev_signer

    data_dir = container.settings.data_dir
    load_or_create_dev_signer(data_dir)  # the development CA the gateway is told to trust
    port = _free_port()
    env = process_env(container.settings, PORT=str(port),
                      GATEWAY_PAYPAL_CA_FILE=str(data_dir / "devcerts" / "ca.pem"))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    spawn([_procfile_line("web")], env, "web", shell=True)
    base = f"http://127.0.0.1:{port}"
    _wait_ready(base)
    for provider, event_type in [("stripe", "invoice.paid"),
                                 ("paypal", "BILLING.SUBSCRIPTION.ACTIVATED")]:
        out = subprocess.run(
            [sys.executable, "-m", "service.cli", "simulate", provider, event_type,
             "--merchant", "cloudbehind", "--url", base],
            env=env, capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr + out.stdout
        answer = json.loads(out.stdout)
        assert answer["status"] == 200 and answer["response"]["duplicate"] is False


def _wait_ready(base: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except requests.RequestException:  # not listening yet, or booting
            time.sleep(0.2)
    raise AssertionError("gunicorn did not become ready")
