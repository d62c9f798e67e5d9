"""The webhook route is served in front of Flask (gateway.webhooks.Webhooks): what Flask did for
it must still hold there. Another method is 405, paths the route does not match go on to Flask,
each request starts with no log context and leaves the delivery's merchant and event bound for
the access line, the error shape is the one every answer has, and a client behind the trusted
proxies is counted by the address the proxy saw."""

from __future__ import annotations

import pytest

from gateway.app import create_app
from sandbox import samples
from service.logs import bind, current_context
from tests.security.fuzz import world
from tests.support import stripe as sig


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
