"""Support files a refund claim; a worker builds the Case from the ledger, decides and pays."""

from __future__ import annotations

from urllib.parse import parse_qs

import responses
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import AuditEntry
from service.bootstrap import Container
from tests.support.claims import paid
from tests.support.delivery import run_worker

STRIPE_REFUNDS = "https://api.stripe.com/v1/refunds"
HOST = {"Authorization": "Bearer test-admin-theopenhost-003", "X-Gateway-Actor": "sam@support"}
VPN = {"Authorization": "Bearer test-admin-cloudbehind-002"}
IDENTITY = {"username": "alice", "main_domain": "alice.example", "invoice_number": "INV-3",
            "date_of_birth": "1980-02-03", "verified": True}
DAY = 86400


def _paid(client: FlaskClient, container: Container, key: str, days_ago: float,
          merchant: str = "theopenhost", interval: str = "month", amount: int = 12000):
    return paid(client, container, key, days_ago, merchant, interval, amount)


def _file(client: FlaskClient, headers, **body):
    return client.post("/v1/refund-requests", json=body, headers=headers)


def _refund_reply(request) -> tuple[int, dict[str, str], str]:
    form = parse_qs(request.body)
    import json

    return 200, {}, json.dumps({"id": "re_req_1", "object": "refund", "status": "succeeded",
                                "amount": int(form["amount"][0]), "currency": "usd",
                                "charge": form["charge"][0]})


@responses.activate
def test_a_claim_inside_the_window_is_refunded_and_shown_with_its_reasons(client, container):
    """Filed, decided from ledger facts, paid through Stripe; GET shows decision and action."""
    scenario = _paid(client, container, "claim-ok", days_ago=3)
    responses.add_callback(responses.POST, STRIPE_REFUNDS, callback=_refund_reply)
    filed = _file(client, HOST, account=scenario.customer_id, payment=scenario.charge_id,
                  reason="the service does not suit me", identity=IDENTITY)
    assert filed.status_code == 202 and filed.json["status"] == "received"
    run_worker(container)

    shown = client.get(f"/v1/refund-requests/{filed.json['id']}", headers=HOST).json
    assert shown["status"] == "decided" and shown["filed_by"] == "sam@support"
    decision = shown["decision"]
    assert decision["decision"]["outcome"] == "full_refund"
    assert decision["case"]["order"]["product_category"] == "web_hosting"  # merchant default
    assert {r["clause"] for r in decision["decision"]["reasons"]} >= {"003 §1.1", "003 §1.1f"}
    (action,) = decision["actions"]
    assert (action["status"], action["amount"]["amount"]) == ("succeeded", 12000)
    assert decision["status"] == "executed"
    with container.sessions() as s:
        actions = {a.action for a in s.scalars(select(AuditEntry))}
    assert {"request.filed", "request.decided"} <= actions


def test_a_late_claim_is_denied_citing_every_failed_clause(client, container):
    """Twenty days after the order the 16-day guarantee is over: deny, no action."""
    scenario = _paid(client, container, "claim-late", days_ago=20)
    filed = _file(client, HOST, account=scenario.customer_id, payment=scenario.charge_id,
                  reason="changed my mind", identity=IDENTITY)
    run_worker(container)
    decision = client.get(f"/v1/refund-requests/{filed.json['id']}", headers=HOST
                          ).json["decision"]
    assert decision["decision"]["outcome"] == "deny" and decision["actions"] == []
    failed = [r for r in decision["decision"]["reasons"] if not r["holds"]]
    assert {r["clause"] for r in failed} == {"003 §1.1f", "003 §1.1e"}
    assert decision["status"] == "closed"


@responses.activate
def test_a_discretionary_case_waits_in_review_and_an_approval_pays_the_amount(client, container):
    """002: over 10GB on a yearly VPN order is the merchant's call; approving refunds it."""
    scenario = _paid(client, container, "vpn", days_ago=2, merchant="cloudbehind",
                     interval="year", amount=6000)
    assert client.post("/v1/usage", headers=VPN, json={
        "account": scenario.customer_id, "bandwidth_bytes": 15 * 2**30, "sessions": 40}
    ).status_code == 201
    filed = _file(client, VPN, account=scenario.customer_id, payment=scenario.charge_id,
                  reason="too slow", identity={"username": "alice"})
    run_worker(container)
    (review,) = client.get("/v1/reviews", headers=VPN).json["reviews"]
    assert review["decision"]["outcome"] == "needs_review"
    assert review["decision"]["amounts"]["proposed_refund"]["amount"] > 0
    assert review["case"]["usage"]["bandwidth_bytes"] == 15 * 2**30

    responses.add_callback(responses.POST, STRIPE_REFUNDS, callback=_refund_reply)
    too_much = client.post(f"/v1/reviews/{review['id']}", headers=VPN, json={
        "approve": True, "reviewer": "kim@finance",
        "refund": {"amount": 6001, "currency": "USD"}})
    assert too_much.status_code == 400 and too_much.json["error"]["field"] == "refund.amount"
    approved = client.post(f"/v1/reviews/{review['id']}", headers=VPN, json={
        "approve": True, "reviewer": "kim@finance", "note": "usage was light",
        "refund": {"amount": 4500, "currency": "USD"}})
    assert approved.status_code == 200
    run_worker(container)
    shown = client.get(f"/v1/refund-requests/{filed.json['id']}", headers=VPN).json["decision"]
    assert shown["reviewed_by"] == "kim@finance" and shown["status"] == "executed"
    assert [(a["amount"]["amount"], a["status"]) for a in shown["actions"]] == [
        (4500, "succeeded")]
    assert client.get("/v1/reviews", headers=VPN).json["reviews"] == []
    again = client.post(f"/v1/reviews/{review['id']}", headers=VPN,
                        json={"approve": False, "reviewer": "kim@finance"})
    assert again.status_code == 409


def test_a_denied_review_closes_the_decision(client, container):
    """Denying a review closes it with the reviewer recorded, and nothing is paid."""
    scenario = _paid(client, container, "vpn-deny", days_ago=2, merchant="cloudbehind",
                     interval="year", amount=6000)
    client.post("/v1/usage", headers=VPN, json={"account": scenario.customer_id,
                                                "bandwidth_bytes": 15 * 2**30, "sessions": 4})
    _file(client, VPN, account=scenario.customer_id, payment=scenario.charge_id,
          reason="too slow", identity={"username": "alice"})
    run_worker(container)
    (review,) = client.get("/v1/reviews", headers=VPN).json["reviews"]
    resp = client.post(f"/v1/reviews/{review['id']}", headers=VPN,
                       json={"approve": False, "reviewer": "kim@finance", "note": "heavy use"})
    assert resp.json["status"] == "closed" and resp.json["decision"]["actions"] == []


def test_a_claim_about_an_unknown_payment_fails_saying_why(client, container):
    """A payment the ledger has never seen cannot be decided: failed, with the reason."""
    filed = _file(client, HOST, account="cus_x", payment="ch_unknown", reason="r",
                  identity=IDENTITY)
    run_worker(container)
    shown = client.get(f"/v1/refund-requests/{filed.json['id']}", headers=HOST).json
    assert shown["status"] == "failed" and "ch_unknown" in shown["error"]


def test_bad_bodies_are_refused_naming_the_field(client, container):
    """Missing, misspelt or mistyped fields get 400 with the field's path."""
    for body, field in [({"payment": "ch", "reason": "r"}, "account"),
                        ({"account": "a", "payment": "ch", "reason": "r", "amount": 5}, "amount"),
                        ({"account": "a", "payment": "ch", "reason": "r",
                          "identity": {"username": 7}}, "identity.username")]:
        resp = client.post("/v1/refund-requests", json=body, headers=HOST)
        assert resp.status_code == 400 and resp.json["error"]["field"] == field, body


def test_a_merchant_sees_only_its_own_requests(client, container):
    """Another merchant's token gets 404 for this merchant's request."""
    filed = _file(client, HOST, account="cus_x", payment="ch_x", reason="r", identity=IDENTITY)
    assert client.get(f"/v1/refund-requests/{filed.json['id']}", headers=VPN).status_code == 404
    assert client.get(f"/v1/refund-requests/{filed.json['id']}").status_code == 401


def test_the_openapi_document_describes_every_admin_route(client):
    """/v1/openapi.json is served and lists the admin routes and body schemas."""
    doc = client.get("/v1/openapi.json").json
    assert doc["openapi"].startswith("3.1")
    assert {"/v1/refund-requests", "/v1/reviews", "/v1/usage"} <= set(doc["paths"])
    assert doc["components"]["schemas"]["RefundRequest"]["required"] == [
        "account", "payment", "reason"]
