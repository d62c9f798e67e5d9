"""The webhook route is served in front of Flask (gateway.webhooks.Webhooks): what Flask did for
it must still hold there. Another method is 405, paths the route does not match go on to Flask,
each request starts with no log context and leaves the delivery's merchant and event bound for
the access line, the error shape is the one every answer has, and a client behind the trusted
proxies is counted by the address the proxy saw."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import InternalServerError, MethodNotAllowed, NotFound
from werkzeug.routing import RequestRedirect
from werkzeug.test import EnvironBuilder, run_wsgi_app

from gateway import webhooks
from gateway.app import create_app
from gateway.responses import http_error_body
from sandbox import samples
from service.bootstrap import Container
from service.config import Merchant
from service.logs import bind, current_context
from tests.conftest import make_settings
from tests.security.fuzz import world
from tests.support import stripe as sig
from tests.support.paypal import shared_signer


def _event(key: str = "route"):
    return samples.stripe_event("charge.succeeded", samples.Scenario(key=key))


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_another_method_is_405_naming_post_and_stores_nothing(client, container, method):
    before = world(container)
    raw = sig.body_of(_event())
    resp = client.open("/webhooks/theopenhost/stripe", method=method, data=raw,
                       headers={"Stripe-Signature": sig.signature(raw)})
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "POST"
    if method != "HEAD":
        assert resp.json["error"]["code"] == "method_not_allowed"
    assert world(container) == before


@pytest.mark.parametrize("path", ["/webhooks/theopenhost/stripe/", "/webhooks/theopenhost",
                                  "/webhooks/theopenhost/stripe/extra", "/webhooks//stripe"])
def test_a_path_the_route_does_not_match_is_flasks_404(client, container, path):
    before = world(container)
    raw = sig.body_of(_event())
    resp = client.post(path, data=raw, headers={"Stripe-Signature": sig.signature(raw)})
    assert resp.status_code == 404
    assert resp.json["error"]["code"] == "not_found"
    assert world(container) == before


def test_answers_are_jsonify_shaped(client):
    """Compact JSON with a newline, as Flask's jsonify writes it, with its length."""
    event = _event()
    resp = sig.post(client, event)
    assert resp.status_code == 200
    assert resp.content_type == "application/json"
    assert resp.get_data() == (b'{"received":true,"event_id":"' + event["id"].encode()
                               + b'","duplicate":false,"status":"pending"}\n')
    assert int(resp.headers["Content-Length"]) == len(resp.get_data())
    unknown = client.post("/webhooks/nobody/stripe", data=b"{}")
    assert unknown.status_code == 404
    assert unknown.json == {"error": {"code": "unknown_merchant",
                                      "message": "no merchant named 'nobody'"}}


def test_each_request_starts_with_no_log_context_and_binds_its_delivery(client):
    """A pool thread serves one request after another: what one bound must not name the next;
    what a delivery binds stays for gunicorn's access line, written after the answer."""
    event = _event()
    bind(merchant="left-over", event_id="evt_left_over")
    assert sig.post(client, event).status_code == 200
    assert current_context() == {"merchant": "theopenhost", "provider": "stripe",
                                 "event_id": event["id"]}
    assert client.get("/webhooks/theopenhost/stripe").status_code == 405
    assert current_context() == {}


def test_the_failure_limit_counts_the_address_the_trusted_proxy_saw(container, database_url,
                                                                   redis_url, other_container):
    """Behind trusted proxies the limit applies to the client's address, not the proxy's: one
    client over the limit is refused, another behind the same proxy is not."""
    behind = other_container(database_url, redis_url, trusted_proxies=1)
    client = create_app(container=behind).test_client()
    limit = behind.settings.signature_failure_limit
    raw = sig.body_of(_event())
    forged = {"Stripe-Signature": sig.signature(raw, secret="whsec_wrong")}
    for _ in range(limit):
        resp = client.post("/webhooks/theopenhost/stripe", data=raw, headers={
            **forged, "X-Forwarded-For": "203.0.113.7"})
        assert resp.status_code == 400
    refused = client.post("/webhooks/theopenhost/stripe", data=raw,
                          headers={**forged, "X-Forwarded-For": "203.0.113.7"})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    other = client.post("/webhooks/theopenhost/stripe", data=raw,
                        headers={**forged, "X-Forwarded-For": "198.51.100.9"})
    assert other.status_code == 400


def test_leading_slashes_reach_the_route_as_in_flask(client, container):
    """werkzeug's router collapses leading slashes (a provider URL built from a base ending in
    "/"): such a delivery is served, not handed to Flask's rule."""
    event = _event("slashes")
    raw = sig.body_of(event)
    resp = client.post("/webhooks/theopenhost/stripe", data=raw,
                       headers={"Stripe-Signature": sig.signature(raw)},
                       environ_overrides={"PATH_INFO": "//webhooks/theopenhost/stripe"})
    assert resp.status_code == 200, resp.get_data()
    assert resp.json["event_id"] == event["id"]


def test_a_merchant_name_is_read_as_utf_8(client):
    resp = client.post("/webhooks/caf%C3%A9/stripe", data=b"{}")
    assert resp.status_code == 404
    assert resp.json["error"]["message"] == "no merchant named 'café'"


class _FaultyContainer(Container):
    """The composition root with a fault of ours in it: every PayPal verifier it hands out
    raises an error nobody planned for (a bug), not a VerificationError."""

    def paypal_verifier(self, merchant: Merchant) -> Any:
        raise FileNotFoundError("a file the code relied on is not there")


def test_a_fault_of_ours_is_a_logged_500_or_raised_where_flask_would(
        tmp_path, database_url, redis_url, container, caplog):
    """An error in our code while a delivery is verified, not the sender's fault: answered as
    Flask answers an unhandled error (500, its message, logged), and raised instead when the
    app propagates errors (testing mode)."""
    broken = _FaultyContainer(make_settings(tmp_path, database_url, redis_url,
                                            Path("/nonexistent/ca.pem")))
    try:
        _fault_answers(create_app(container=broken), caplog)
    finally:
        broken.close()


def _fault_answers(app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    event = samples.paypal_event("PAYMENT.SALE.COMPLETED", samples.Scenario(key="fault"))
    raw = json.dumps(event).encode()
    headers = shared_signer().headers(raw, "WH-THEOPENHOST-SANDBOX-003")
    with caplog.at_level(logging.ERROR, logger="gateway.webhooks"):
        resp = app.test_client().post("/webhooks/theopenhost/paypal", data=raw, headers=headers)
    assert resp.status_code == 500
    assert resp.get_json() == http_error_body(InternalServerError())
    assert any(r.message == "Exception on /webhooks/theopenhost/paypal [POST]" and r.exc_info
               for r in caplog.records)
    app.testing = True
    with pytest.raises(FileNotFoundError):
        app.test_client().post("/webhooks/theopenhost/paypal", data=raw, headers=headers)


_SEGMENT = st.sampled_from(["theopenhost", "stripe", "paypal", "café", "a b", "..", ".", "",
                            "%41", "\n", "x/y", "é\x00"]) | st.text(max_size=4)


# The app only lends its URL map, which no example changes.
@settings(max_examples=500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lead=st.sampled_from(["/", "//", "///", ""]),
       word=st.sampled_from(["webhooks", "webhook", "Webhooks", "webhooks/"]),
       merchant=_SEGMENT, sep=st.sampled_from(["/", "//"]), provider=_SEGMENT,
       tail=st.sampled_from(["", "/", "/extra", "\n", "//"]),
       junk=st.none() | st.binary(min_size=1, max_size=4))
def test_the_route_takes_exactly_the_paths_flasks_rule_matches(
        app, lead, word, merchant, sep, provider, tail, junk):
    """For any path a server may hand over (a WSGI string: the request's bytes as latin-1),
    gateway.webhooks serves it if and only if Flask's URL map sends it to the webhook rule,
    with the same merchant and provider: no webhook request falls through to Flask, none of
    Flask's is taken."""
    path = f"{lead}{word}/{merchant}{sep}{provider}{tail}".encode() + (junk or b"")
    wsgi_path = path.decode("latin-1")
    adapter = app.url_map.bind_to_environ({
        "PATH_INFO": wsgi_path, "SCRIPT_NAME": "", "REQUEST_METHOD": "POST",
        "SERVER_NAME": "localhost", "SERVER_PORT": "80", "HTTP_HOST": "localhost",
        "wsgi.url_scheme": "http"})
    try:
        endpoint, args = adapter.match(method="POST")
    except (NotFound, MethodNotAllowed, RequestRedirect):
        endpoint, args = None, {}
    flask_route = ((args["merchant_name"], args["provider"])
                   if endpoint == webhooks.ENDPOINT else None)
    assert webhooks.route_of(wsgi_path) == flask_route


def _chunked(app: Flask, raw: bytes) -> tuple[int, Any]:
    """POST ``raw`` as a server hands over a chunked body: no Content-Length, and the stream
    ended by the server (``wsgi.input_terminated``), as gunicorn does."""
    environ = EnvironBuilder(method="POST", path="/webhooks/theopenhost/stripe",
                             headers=[("Stripe-Signature", sig.signature(raw)),
                                      ("Content-Type", "application/json")]).get_environ()
    environ.pop("CONTENT_LENGTH", None)
    environ.update({"wsgi.input": io.BytesIO(raw), "wsgi.input_terminated": True})
    body, status, _ = run_wsgi_app(app, environ, buffered=True)
    return int(status.split()[0]), json.loads(b"".join(body))


def _padded(size: int) -> bytes:
    """A signed-to-be Stripe event of exactly ``size`` bytes."""
    event = _event(f"size{size}")
    event["data"]["object"]["metadata"] = {"pad": ""}
    base = len(json.dumps(event).encode())
    event["data"]["object"]["metadata"]["pad"] = "x" * (size - base)
    raw = json.dumps(event).encode()
    assert len(raw) == size
    return raw


def test_a_chunked_body_past_the_limit_is_413_not_cut_short(app, container):
    """Without a Content-Length the body is read up to the limit; one that goes on is refused
    as too large, rather than verified short (a bad signature, counted against the sender)."""
    limit = container.settings.body_limit
    before = world(container)
    status, answer = _chunked(app, _padded(limit + 1))
    assert status == 413
    assert answer["error"]["code"] == "request_entity_too_large"
    assert world(container) == before
    status, answer = _chunked(app, _padded(limit))
    assert (status, answer["duplicate"]) == (200, False)


def test_a_path_no_server_would_send_is_still_answered(app):
    """A PATH_INFO with a character outside latin-1 (no WSGI server sends one) gets an answer
    in the one error shape, not an unhandled error."""
    environ = EnvironBuilder(method="POST", path="/webhooks/x/stripe").get_environ()
    environ["PATH_INFO"] = "/webhooks/caf\u20ac/stripe"
    body, status, _ = run_wsgi_app(app, environ, buffered=True)
    assert status.startswith("404")
    assert json.loads(b"".join(body))["error"]["code"] == "unknown_merchant"
