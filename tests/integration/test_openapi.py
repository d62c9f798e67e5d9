"""/v1/openapi.json is the HTTP interface as it is: every route of ``app.url_map`` documented and
nothing documented that does not exist, every schema valid and every reference resolved, and
real answers (a tour of every route through the app the other tests use) valid against the
schema documented for their status and media type."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from sqlalchemy import update

from gateway.openapi import ROUTES, document
from gateway.validation import schemas as request_schemas
from ledger.models import InboxEvent, InboxStatus
from sandbox import samples
from service.bootstrap import Container
from tests.support import stripe as sig
from tests.support.claims import FULL_IDENTITY, headers, paid
from tests.support.delivery import run_worker
from tests.support.providers import provider_apis_answered

HOST = headers("theopenhost")
VPN = headers("cloudbehind")
UNDOCUMENTED = {"static"}  # Flask's own static-file route, which serves nothing here
# The console's pages are HTML for people (README: Console), not the JSON interface.
CONSOLE = "console."


def _template(rule: str) -> str:
    """Flask's ``/v1/events/<event_id>`` as OpenAPI's ``/v1/events/{event_id}``."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def _served(app: Flask) -> set[tuple[str, str]]:
    return {(method.lower(), _template(rule.rule)) for rule in app.url_map.iter_rules()
            if rule.endpoint not in UNDOCUMENTED and not rule.endpoint.startswith(CONSOLE)
            for method in rule.methods or () if method not in ("HEAD", "OPTIONS")}


def test_every_route_is_documented_and_nothing_else(app, client):
    """The document's operations are exactly the app's routes and methods."""
    doc = client.get("/v1/openapi.json").json
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == _served(app)
    assert doc == document()


def test_every_schema_is_valid_and_every_reference_resolves(client):
    """Each component is a valid 2020-12 schema; each $ref names a component."""
    doc = client.get("/v1/openapi.json").json
    components = doc["components"]["schemas"]
    for schema in components.values():
        Draft202012Validator.check_schema(schema)
    refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', _dumps(doc)))
    assert refs and refs <= set(components), refs - set(components)


def test_each_request_body_is_documented_by_the_schema_that_validates_it(client):
    """The documented request schemas are gateway.validation's, field for field."""
    doc = client.get("/v1/openapi.json").json
    for name, schema in request_schemas().items():
        documented = doc["components"]["schemas"][name]
        assert documented["required"] == schema["required"], name
        assert set(documented["properties"]) == set(schema["properties"]), name
    bodies = {r.body for r in ROUTES if r.body and r.body != "ProviderEvent"}
    assert bodies == set(request_schemas())


@pytest.mark.parametrize("route", [r for r in ROUTES if r.body and r.merchant],
                         ids=lambda r: r.path)
def test_a_body_that_is_not_json_is_invalid_json_on_every_json_route(checked, route):
    """Not JSON at all (whatever the Content-Type) is its own error, not a missing field."""
    url = route.path.replace("{decision_id}", "dec_none")
    for content_type in ("application/json", "text/plain"):
        resp = checked.post(url, headers=HOST, data=b"{\"account\": ", content_type=content_type)
        assert resp.status_code == 400, (url, resp.json)
        assert resp.json["error"]["code"] == "invalid_json"
        assert resp.json["error"]["field"] == "body"


class Checked:
    """A test client whose every answer is validated against the document: its status must be
    documented for the route, its media type too, and its body must match the schema."""

    def __init__(self, app: Flask, client: FlaskClient) -> None:
        self.client = client
        self.adapter = app.url_map.bind("localhost")
        self.doc = document()
        self.seen: set[tuple[str, str, int]] = set()

    def get(self, url: str, **kw: Any) -> Any:
        return self.open("get", url, **kw)

    def post(self, url: str, **kw: Any) -> Any:
        return self.open("post", url, **kw)

    def open(self, method: str, url: str, **kw: Any) -> Any:
        resp = self.client.open(url, method=method.upper(), **kw)
        rule, _ = self.adapter.match(urlsplit(url).path, method=method.upper(),
                                     return_rule=True)
        path = _template(rule.rule)
        answers = self.doc["paths"][path][method]["responses"]
        where = f"{method.upper()} {url} answered {resp.status_code}"
        assert str(resp.status_code) in answers, f"{where}, which is not documented"
        content = answers[str(resp.status_code)]["content"]
        assert resp.mimetype in content, f"{where} as {resp.mimetype}, not documented"
        schema = content[resp.mimetype].get("schema")
        if schema is not None:
            validator = Draft202012Validator({**schema, "components": self.doc["components"]})
            errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
                      for e in validator.iter_errors(resp.get_json())]
            assert not errors, (where, errors, resp.get_json())
        self.seen.add((method, path, resp.status_code))
        return resp


@pytest.fixture
def checked(app: Flask, client: FlaskClient) -> Checked:
    return Checked(app, client)


@responses.activate
def test_real_answers_of_every_route_match_their_documented_schemas(
        checked: Checked, container: Container):
    """A tour of the interface: each route's success, and its usual refusals, validated."""
    provider_apis_answered(refund_id="re_doc_1")
    _the_open_routes(checked)
    scenario = paid(checked, container, "doc-tour", days_ago=3)  # webhooks, through `checked`
    _webhook_refusals(checked)
    _preview(checked)
    _support_requests(checked, container, scenario)
    _reviews(checked, container)
    _events(checked, container, scenario)
    _reports(checked, container)
    succeeded = {(m, p) for m, p, status in checked.seen if status < 300}
    assert succeeded == {(r.method, r.path) for r in ROUTES}, (
        {(r.method, r.path) for r in ROUTES} - succeeded)


def _the_open_routes(checked: Checked) -> None:
    assert checked.get("/v1/openapi.json").status_code == 200
    assert checked.get("/healthz").status_code == 200
    assert checked.get("/readyz").status_code == 200
    assert checked.get("/metrics").status_code == 200


def _webhook_refusals(checked: Checked) -> None:
    event = samples.stripe_event("charge.succeeded", samples.Scenario(key="doc-refusals"))
    assert sig.post(checked, event, header="t=1,v1=00").status_code == 400
    assert sig.post(checked, event, merchant="nosuch").status_code == 404
    first, again = sig.post(checked, event), sig.post(checked, event)
    assert first.status_code == again.status_code == 200 and again.json["duplicate"]


def _preview(checked: Checked) -> None:
    case = _example_case()
    decided = checked.post("/v1/decisions/preview", headers=HOST,
                           json={"case": case, "at": "2025-03-04T10:00:00Z"})
    assert decided.status_code == 200
    not_json = checked.post("/v1/decisions/preview", headers=HOST, data="{not json",
                            content_type="application/json")
    assert not_json.status_code == 400
    assert not_json.json["error"] == {"code": "invalid_json", "field": "body",
                                      "message": "the body is not valid JSON; send a JSON "
                                                 "object"}
    assert checked.post("/v1/decisions/preview", json={"case": case}).status_code == 401
    bad = checked.post("/v1/decisions/preview", headers=HOST, json={"case": {}})
    assert bad.status_code == 400 and bad.json["error"]["code"] == "invalid_case"


def _example_case() -> dict[str, Any]:
    import json
    from pathlib import Path

    path = Path(__file__).parents[2] / "docs/examples/theopenhost-refund-day-3.json"
    return dict(json.loads(path.read_text()))


def _support_requests(checked: Checked, container: Container,
                      scenario: samples.Scenario) -> None:
    claim = {"account": scenario.customer_id, "payment": scenario.charge_id,
             "reason": "it does not work for me", "identity": FULL_IDENTITY}
    filed = checked.post("/v1/refund-requests", headers=HOST, json=claim)
    assert filed.status_code == 202
    assert checked.post("/v1/refund-requests", headers=HOST, json=claim).status_code == 409
    assert checked.post("/v1/refund-requests", headers=HOST, data="nope").status_code == 400
    keyed = {**HOST, "Idempotency-Key": "doc-usage"}
    usage = {"account": scenario.customer_id, "bandwidth_bytes": 10, "sessions": 1}
    assert checked.post("/v1/usage", headers=keyed, json=usage).status_code == 201
    assert checked.post("/v1/usage", headers=keyed,
                        json={**usage, "sessions": 2}).status_code == 422
    cancelled = checked.post("/v1/cancellations", headers=HOST, json={
        "account": scenario.customer_id, "subscription": scenario.subscription_id,
        "reason": "moving on", "identity": FULL_IDENTITY})
    assert cancelled.status_code == 202
    claimed = checked.post("/v1/uptime-claims", headers=HOST, json={
        "account": scenario.customer_id, "subscription": scenario.subscription_id,
        "identity": FULL_IDENTITY | {"order_number": "ORD-1"},
        "uptime": {"measured_percent": "99.0", "incident_at": _recent(),
                   "cause": "network"}})
    assert claimed.status_code == 202, claimed.json
    run_worker(container)
    for kind, answer in (("refund-requests", filed), ("cancellations", cancelled),
                         ("uptime-claims", claimed)):
        shown = checked.get(f"/v1/{kind}/{answer.json['id']}", headers=HOST)
        assert shown.status_code == 200 and shown.json["status"] != "received"
    decision = checked.get(f"/v1/refund-requests/{filed.json['id']}", headers=HOST
                           ).json["decision"]
    assert checked.get(f"/v1/decisions/{decision['id']}", headers=HOST).status_code == 200
    assert checked.get("/v1/decisions/dec_nope", headers=HOST).status_code == 404
    credit = checked.get(f"/v1/accounts/{scenario.customer_id}/credit", headers=HOST)
    assert credit.status_code == 200
    assert checked.get("/v1/accounts/cus_nope/credit", headers=HOST).status_code == 404
    assert checked.get("/v1/refund-requests/req_nope", headers=HOST).status_code == 404


def _recent() -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) - timedelta(hours=2)).isoformat().replace("+00:00", "Z")


def _reviews(checked: Checked, container: Container) -> None:
    """A yearly VPN order over 10GB waits in review (002); approving refunds part of it."""
    scenario = paid(checked, container, "doc-vpn", days_ago=2, merchant="cloudbehind",
                    interval="year", amount=6000)
    checked.post("/v1/usage", headers=VPN, json={
        "account": scenario.customer_id, "bandwidth_bytes": 15 * 2**30, "sessions": 40})
    checked.post("/v1/refund-requests", headers=VPN, json={
        "account": scenario.customer_id, "payment": scenario.charge_id, "reason": "too slow",
        "identity": {"username": "alice"}})
    run_worker(container)
    listed = checked.get("/v1/reviews", headers=VPN)
    (review,) = listed.json["reviews"]
    url = f"/v1/reviews/{review['id']}"
    too_much = checked.post(url, headers=VPN, json={
        "approve": True, "reviewer": "kim", "refund": {"amount": 6001, "currency": "USD"}})
    assert too_much.status_code == 400
    approved = checked.post(url, headers=VPN, json={
        "approve": True, "reviewer": "kim", "refund": {"amount": 4500, "currency": "USD"}})
    assert approved.status_code == 200
    again = checked.post(url, headers=VPN, json={"approve": False, "reviewer": "kim"})
    assert again.status_code == 409
    assert checked.post("/v1/reviews/dec_nope", headers=VPN, json={
        "approve": False, "reviewer": "kim"}).status_code == 404


def _events(checked: Checked, container: Container, scenario: samples.Scenario) -> None:
    listed = checked.get("/v1/refund-requests/req_nope", headers=HOST)
    assert listed.status_code == 404
    charge = samples.stripe_event("charge.succeeded", scenario)
    assert checked.get(f"/v1/events/{charge['id']}", headers=HOST).status_code == 200
    assert checked.get("/v1/events/evt_nope", headers=HOST).status_code == 404
    found = checked.get("/v1/events", headers=HOST, query_string={"type": "charge.succeeded"})
    assert charge["id"] in [e["event_id"] for e in found.json["events"]]
    assert checked.get("/v1/events?limit=0", headers=HOST).status_code == 400
    assert checked.post(f"/v1/events/{charge['id']}/replay", headers=HOST).status_code == 409
    with container.engine.begin() as conn:  # as if its handler had failed too often
        conn.execute(update(InboxEvent).where(InboxEvent.event_id == charge["id"])
                     .values(status=InboxStatus.DEAD))
    assert checked.post(f"/v1/events/{charge['id']}/replay", headers=HOST).status_code == 202
    assert checked.post("/v1/events/replay", headers=HOST,
                        json={"status": "dead"}).status_code == 202


def _reports(checked: Checked, container: Container) -> None:
    started = checked.post("/v1/reports/reconciliation", headers=HOST,
                           json={"from": "2026-01-01", "to": "2026-02-01"})
    assert started.status_code == 202
    location = started.headers["Location"]
    assert checked.get(location, headers=HOST).status_code == 202
    run_worker(container)
    assert checked.get(location, headers=HOST).status_code == 200
    assert checked.get(f"{location}?format=csv", headers=HOST).status_code == 200
    assert checked.get(f"{location}?format=pdf", headers=HOST).status_code == 400
    assert checked.get("/v1/reports/reconciliation/rpt_nope", headers=HOST).status_code == 404


def _dumps(doc: dict[str, Any]) -> str:
    import json

    return json.dumps(doc)


README = Path(__file__).resolve().parents[2] / "README.md"


def _admin_section() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("**The admin API**"):text.index("**Stripe** signatures")]


def test_the_readme_lists_every_field_of_every_request_body():
    """The README's admin tables name each field the schemas take, identity's included."""
    section = _admin_section()
    for name, schema in request_schemas().items():
        for field in schema["properties"]:
            assert f"`{field}`" in section, (name, field)
    identity = request_schemas()["RefundRequest"]["properties"]["identity"]["properties"]
    for field in identity:
        assert f"`{field}`" in section, field


def test_the_readme_names_the_identity_each_merchants_pack_asks_for():
    """Each pack's identity requirements appear in its merchant's row."""
    import tomllib

    rows = {line.split("`")[1]: line for line in _admin_section().splitlines()
            if line.startswith("| `") and "(00" in line}
    packs = Path(__file__).resolve().parents[2] / "policy" / "packs"
    for merchant, row in rows.items():
        pack = tomllib.loads((packs / f"{merchant}.toml").read_text(encoding="utf-8"))
        for rule in _identity_rules(pack):
            for group in rule.get("require", []):
                for field in group:
                    assert f"`{field}`" in row, (merchant, field)
            if rule.get("verified_required"):
                assert "`verified: true`" in row, merchant
    assert set(rows) == {p.stem for p in packs.glob("*.toml")}


def _identity_rules(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [rule for item in node for rule in _identity_rules(item)]
    if not isinstance(node, dict):
        return []
    found = [node["identity"]] if isinstance(node.get("identity"), dict) else []
    return found + [rule for value in node.values() for rule in _identity_rules(value)]
