"""The Procfile's web line, run as written, serves the app."""

from __future__ import annotations

import socket
import time

import requests

from tests.e2e.conftest import ROOT, process_env
from tests.support import stripe as sig
from service import samples


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
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except requests.RequestException:  # not listening yet, or booting
            time.sleep(0.2)
    else:
        raise AssertionError("gunicorn did not become ready")
    assert requests.get(f"{base}/healthz", timeout=5).json() == {"status": "ok"}
    event = samples.stripe_event("charge.succeeded", samples.Scenario(key="gunicorn"))
    raw = sig.body_of(event)
    resp = requests.post(f"{base}/webhooks/theopenhost/stripe", data=raw, timeout=5,
                         headers={"Stripe-Signature": sig.signature(raw),
                                  "Content-Type": "application/json"})
    assert resp.status_code == 200 and resp.json()["event_id"] == event["id"]
