"""The web process's log, as the Procfile runs it, never shows a configured secret or token:
not from a query string (gunicorn's access line), a header or a body, whatever a client sends.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import time
from pathlib import Path

import requests

from sandbox import samples
from service.config import Settings
from tests.e2e.conftest import process_env, procfile_line, wait_ready
from tests.support import stripe as sig
from tests.support.delivery import PAYPAL_MERCHANT, PAYPAL_WEBHOOK_ID
from tests.support.outages import free_port
from tests.support.paypal import shared_signer

# Query parameters a client might put a secret in; the access line must hold none of them.
_PARAMETERS = ("token", "access_token", "api_key", "key", "secret", "client_secret",
               "signature", "password")


def _configured_secrets(settings: Settings, metrics_token: str) -> list[str]:
    out = [metrics_token]
    for m in settings.merchants.values():
        out += [m.admin_token, *m.stripe.webhook_secrets, m.stripe.api_key, m.paypal.client_id,
                m.paypal.client_secret]
    return sorted({s for s in out if s})


def _hostile_headers(value: str) -> dict[str, str]:
    """Every place in a request's headers a client might put ``value``."""
    basic = base64.b64encode(f"{value}:{value}".encode()).decode()
    return {
        "Authorization": f"Basic {basic}",  # gunicorn's %(u)s would log the user
        "X-Api-Key": value,
        "Cookie": f"session={value}",
        "User-Agent": f"client/1.0 ({value})",
        "Referer": f"https://shop.example/return?token={value}&next=/",
        "Stripe-Signature": f"t=1,v1={value}",
        "Paypal-Transmission-Sig": value,
    }


def _query(value: str) -> str:
    return "&".join(f"{name}={value}" for name in _PARAMETERS)


def _access_lines(log: Path) -> list[str]:
    """The messages of gunicorn's access lines."""
    lines = [json.loads(line) for line in log.read_text(errors="replace").splitlines()
             if '"gunicorn.access"' in line]
    return [line["message"] for line in lines if line["logger"] == "gunicorn.access"]


def test_no_secret_or_token_sent_to_the_web_process_reaches_its_log(container, spawn, tmp_path):
    """Every configured secret and token, sent in query strings, headers and bodies, to the
    admin API, /metrics and both webhook endpoints, accepted or refused: not one of them is in
    any line the web process writes (at DEBUG), and access lines show paths without queries."""
    metrics_token = "metrics-" + secrets.token_hex(12)
    port = free_port()
    env = process_env(container.settings, PORT=str(port), LOG_LEVEL="DEBUG",
                      GATEWAY_METRICS_TOKEN=metrics_token,
                      GATEWAY_SIGNATURE_FAILURE_LIMIT="0")  # every refusal reaches the view
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    spawn([procfile_line("web")], env, "web", shell=True)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    values = _configured_secrets(container.settings, metrics_token)
    sent: list[int] = []

    def call(method: str, path: str, **kwargs: object) -> requests.Response:
        resp = requests.request(method, f"{base}{path}", timeout=10, **kwargs)  # type: ignore[arg-type]
        assert resp.status_code < 500, (method, path, resp.status_code, resp.text)
        sent.append(resp.status_code)
        return resp

    tokens = {name: m.admin_token for name, m in container.settings.merchants.items()}
    for name, token in tokens.items():  # accepted calls, with the token in the query too
        bearer = {"Authorization": f"Bearer {token}"}
        assert call("GET", "/v1/reviews", headers=bearer).status_code == 200
        assert call("POST", f"/v1/usage?{_query(token)}", headers=bearer, json={
            "account": f"cus_{name}", "bandwidth_bytes": 1, "sessions": 1}).status_code == 201
        # refused, naming the first unknown parameter (its name, never its value)
        assert call("GET", f"/v1/reviews?{_query(token)}", headers=bearer).status_code == 400
    assert call("GET", f"/metrics?{_query(metrics_token)}", headers={
        "Authorization": f"Bearer {metrics_token}"}).status_code == 200

    event = samples.stripe_event("charge.succeeded", samples.Scenario(key="log-secrets"))
    raw = sig.body_of(event)
    good = sig.signature(raw)
    assert call("POST", f"/webhooks/{sig.MERCHANT}/stripe?{_query(sig.SECRET)}", data=raw,
                headers={"Stripe-Signature": good,
                         "Content-Type": "application/json"}).status_code == 200
    paypal = sig.body_of(samples.paypal_event("PAYMENT.SALE.COMPLETED", samples.Scenario(
        key="log-secrets", payment_method="paypal")))
    pp_headers = shared_signer().headers(paypal, PAYPAL_WEBHOOK_ID)
    assert call("POST", f"/webhooks/{PAYPAL_MERCHANT}/paypal", data=paypal,
                headers=pp_headers | {"Content-Type": "application/json"}).status_code == 200

    for value in values:  # refused calls: each secret everywhere a client could put it
        hostile = _hostile_headers(value)
        body = {"account": value, "payment": value, "reason": value, "token": value,
                "identity": {"username": value, "password": value}}
        call("GET", f"/v1/reviews?{_query(value)}", headers=hostile)
        call("GET", f"/v1/decisions/dec_1?{_query(value)}",
             headers={"Authorization": f"Bearer {value}x"})
        call("POST", f"/v1/refund-requests?{_query(value)}", json=body,
             headers={"Authorization": f"Bearer {value}"})
        call("GET", f"/metrics?{_query(value)}", headers={"Authorization": f"Bearer {value}"})
        for merchant in tokens:
            call("POST", f"/webhooks/{merchant}/stripe?{_query(value)}",
                 data=f'{{"id": "evt_1", "secret": "{value}"}}',
                 headers=hostile | {"Content-Type": "application/json"})
        call("POST", f"/webhooks/{PAYPAL_MERCHANT}/paypal?{_query(value)}",
             data=f'{{"id": "WH-1", "client_secret": "{value}"}}',
             headers=pp_headers | {"Paypal-Transmission-Sig": value,
                                   "Content-Type": "application/json"})
        call("GET", f"/readyz?{_query(value)}", headers=hostile)

    log = tmp_path / "web-0.log"
    deadline = time.monotonic() + 10  # an access line is written after its response is sent
    while len(_access_lines(log)) < len(sent):
        assert time.monotonic() < deadline, f"{len(_access_lines(log))} of {len(sent)} lines"
        time.sleep(0.1)
    text = log.read_text(errors="replace")
    signatures = [good.split("v1=")[1], pp_headers["PAYPAL-TRANSMISSION-SIG"]]
    leaked = [value for value in values + signatures if value in text]
    assert not leaked, f"{len(leaked)} secret(s) in the web log, e.g. {leaked[0][:10]}..."
    access = _access_lines(log)
    assert any('"GET /v1/reviews HTTP/1.1"' in line for line in access)
    assert not [line for line in access if "?" in line], "an access line kept a query string"
