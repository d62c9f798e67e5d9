"""A local fake of the Stripe and PayPal APIs the adapters call: refunds, subscription
cancellations and customer-balance credits. The demo runs against it, and so do tests whose
worker is another process (where ``responses`` cannot reach).

It keeps the providers' idempotency promise: a repeated Idempotency-Key (Stripe) or
PayPal-Request-Id (PayPal) answers with the refund the first request created. Every request is
recorded so tests can count what reached the "provider".
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class FakeProviders:
    requests: list[Recorded] = field(default_factory=list)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> refund
    lock: threading.Lock = field(default_factory=threading.Lock)
    refunds_down: bool = False  # answer refund requests 500, as an outage would

    def posts_with_key(self, key: str) -> int:
        """Refund requests carrying ``key`` (paypalrestsdk also sends it on the token call)."""
        return sum(1 for r in self.requests
                   if r.method == "POST" and r.path.endswith("refund" if "/payments/" in r.path
                                                             else "refunds")
                   and key in (r.headers.get("Idempotency-Key"),
                               r.headers.get("PayPal-Request-Id")))

    def stripe_refund(self, key: str, form: dict[str, list[str]]) -> dict[str, Any]:
        with self.lock:
            if key not in self.refunds:
                self.refunds[key] = {
                    "id": f"re_fake_{len(self.refunds) + 1}", "object": "refund",
                    "amount": int(form["amount"][0]), "currency": "usd", "status": "succeeded",
                    "charge": form.get("charge", [None])[0],
                    "metadata": {k[9:-1]: v[0] for k, v in form.items()
                                 if k.startswith("metadata[")}}
            return self.refunds[key]

    def paypal_refund(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if key not in self.refunds:
                self.refunds[key] = {"id": f"FAKE{len(self.refunds) + 1:013d}",
                                     "status": "COMPLETED", "amount": body["amount"]}
            return self.refunds[key]


def _handler(fake: FakeProviders) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _answer(self, status: int, body: Any) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> str:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            fake.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
            return body

        def do_GET(self) -> None:  # noqa: N802
            self._record()
            url = urlsplit(self.path)
            if url.path == "/v1/refunds":
                charge = parse_qs(url.query).get("charge", [""])[0]
                data = [r for r in fake.refunds.values() if r.get("charge") == charge]
                self._answer(200, {"object": "list", "data": data, "has_more": False,
                                   "url": "/v1/refunds"})
            else:
                self._answer(404, {"error": {"type": "invalid_request_error"}})

        def do_POST(self) -> None:  # noqa: N802
            body = self._record()
            path = urlsplit(self.path).path
            if fake.refunds_down and path.endswith(("/refund", "/refunds")):
                self._answer(500, {"error": {"type": "api_error", "message": "down"},
                                   "name": "INTERNAL_SERVICE_ERROR"})
            elif path == "/v1/refunds":
                form = parse_qs(body)
                self._answer(200, fake.stripe_refund(self.headers["Idempotency-Key"], form))
            elif path == "/v1/oauth2/token":
                self._answer(200, {"access_token": "A21-fake", "token_type": "Bearer",
                                   "expires_in": 3600})
            elif re.fullmatch(r"/v(1/payments/sale|2/payments/captures)/[^/]+/refund", path):
                self._answer(201, fake.paypal_refund(self.headers["PayPal-Request-Id"],
                                                     json.loads(body)))
            elif match := re.fullmatch(r"/v1/subscriptions/([^/]+)", path):
                self._answer(200, {"id": match[1], "object": "subscription", "status": "active"})
            elif match := re.fullmatch(r"/v1/customers/([^/]+)/balance_transactions", path):
                form = parse_qs(body)
                self._answer(200, {"id": f"cbtxn_{self.headers['Idempotency-Key'][-12:]}",
                                   "object": "customer_balance_transaction",
                                   "customer": match[1], "amount": int(form["amount"][0]),
                                   "currency": form["currency"][0]})
            elif re.fullmatch(r"/v1/billing/subscriptions/[^/]+/cancel", path):
                self._answer(204, None)
            else:
                self._answer(404, {"error": "not found"})

    return Handler


def start() -> tuple[FakeProviders, ThreadingHTTPServer]:
    fake = FakeProviders()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return fake, server


def merchants_file_for(base_url: str, source: str) -> str:
    """The default merchants file with every provider API pointed at ``base_url``."""
    return re.sub(r"^(\[merchants\.[a-z]+\.(stripe|paypal)\])$",
                  rf'\1\napi_base = "{base_url}"', source, flags=re.M)
