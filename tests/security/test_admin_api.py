"""The admin API under hostile use: every route needs a token, sees one merchant, names the field.

Routes are read from the app's own URL map, so a route added later is held to the same rules
without a line here (a route whose path parameter this file cannot fill fails until it can).
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import responses
from hypothesis import given
from hypothesis import strategies as st

from sandbox import samples
from service.bootstrap import Container
from tests.security.bodies import FULL, fields, names_a_field_of, schema_of, set_at
from tests.security.fuzz import FUZZ, TALLY, assert_error_shape
from tests.support import stripe as sig
from tests.support.delivery import run_worker

OWNER = "cloudbehind"  # merchant A: owns every object below
OWNER_TOKEN = {"Authorization": "Bearer test-admin-cloudbehind-002"}
OTHER_TOKEN = {"Authorization": "Bearer test-admin-theopenhost-003"}  # merchant B
PUBLIC = {"admin.openapi"}  # the OpenAPI document holds no data
BAD_AUTH = [
    {},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer not-a-token-of-anyone"},
    {"Authorization": "Basic dGVzdC1hZG1pbi1jbG91ZGJlaGluZC0wMDI="},  # the right token, Basic
    {"Authorization": "test-admin-cloudbehind-002"},  # no scheme
    {"Authorization": "Bearer test-admin-cloudbehind-00"},  # a prefix of a real token
    {"Authorization": "Bearer test-admin-cloudbehind-0022"},
    {"X-Api-Key": "test-admin-cloudbehind-002"},
]


def admin_rules(app: Any) -> list[tuple[str, str, str]]:
    """(endpoint, method, rule) for every route under /v1/ that needs a token."""
    return sorted((rule.endpoint, method, rule.rule) for rule in app.url_map.iter_rules()
                  if rule.rule.startswith("/v1/") and rule.endpoint not in PUBLIC
                  for method in sorted(rule.methods - {"HEAD", "OPTIONS"}))


def fill(rule: str, ids: dict[str, str]) -> str:
    for name, value in ids.items():
        rule = rule.replace(f"<{name}>", value)
    assert "<" not in rule, f"{rule}: no object to fill its path parameter with; add one"
    return rule


def secrets_of(settings: Any) -> list[str]:
    """Every token and secret the gateway holds."""
    out = []
    for m in settings.merchants.values():
        out += [m.admin_token, *m.stripe.webhook_secrets, m.stripe.api_key,
                m.paypal.client_id, m.paypal.client_secret]
    return [s for s in out if s]


@pytest.fixture
def owned(client, container: Container) -> dict[str, str]:
    """Merchant A's objects: a stored event, a request of each kind, a decision in review."""
    scenario = samples.Scenario(key="iso", amount=6000, interval="year",
                                period_start=int(time.time() - 2 * 86400))
    for event_type in ("customer.subscription.created", "invoice.paid", "charge.succeeded"):
        event = samples.stripe_event(event_type, scenario)
        assert sig.post(client, event, merchant=OWNER,
                        secret="whsec_test_cloudbehind_current").status_code == 200
    run_worker(container)
    assert client.post("/v1/usage", headers=OWNER_TOKEN, json={
        "account": scenario.customer_id, "bandwidth_bytes": 15 * 2**30, "sessions": 40}
    ).status_code == 201
    filed = {path: client.post(path, headers=OWNER_TOKEN, json=body).json["id"] for path, body in [
        ("/v1/refund-requests", {"account": scenario.customer_id, "payment": scenario.charge_id,
                                 "reason": "too slow", "identity": {"username": "alice"}}),
        ("/v1/cancellations", {"account": scenario.customer_id,
                               "subscription": scenario.subscription_id}),
        ("/v1/uptime-claims", {"account": scenario.customer_id,
                               "subscription": scenario.subscription_id,
                               "uptime": {"measured_percent": 97, "incident_at":
                                          "2025-03-04T09:00:00Z"}})]}
    with responses.RequestsMock(assert_all_requests_are_fired=False):  # no provider is reached
        run_worker(container)
    reviews = client.get("/v1/reviews", headers=OWNER_TOKEN).json["reviews"]
    assert reviews, "the refund claim should wait in review"
    report = client.post("/v1/reports/reconciliation", headers=OWNER_TOKEN,
                         json={"from": "2025-01-01", "to": "2025-02-01"}).json["id"]
    return {"request_id": filed["/v1/refund-requests"], "decision_id": reviews[0]["id"],
            "report_id": report,
            "event_id": event["id"], "account": scenario.customer_id,
            "cancellation": filed["/v1/cancellations"], "uptime": filed["/v1/uptime-claims"]}


def call(client: Any, method: str, url: str, headers: dict[str, str]) -> Any:
    body = FULL.get(url.split("?")[0], (None, {"approve": False, "reviewer": "x"}))[1]
    with responses.RequestsMock(assert_all_requests_are_fired=False):  # no provider is reached
        if method == "GET":
            return client.get(url, headers=headers)
        return client.post(url, json=body, headers=headers)


def test_every_admin_route_refuses_a_missing_or_wrong_token(app, client, owned, settings):
    """No token, a wrong one, a near miss or the right one sent wrongly: 401, and nothing leaks."""
    rules = admin_rules(app)
    assert len(rules) >= 12
    for endpoint, method, rule in rules:
        url = fill(rule, owned)
        for headers in BAD_AUTH:
            TALLY["admin: bad tokens on every route"] += 1
            resp = call(client, method, url, headers)
            assert resp.status_code == 401, (endpoint, headers)
            assert_error_shape(resp)
            assert not any(s in resp.get_data(as_text=True) for s in secrets_of(settings))


def test_another_merchants_token_cannot_see_or_touch_this_merchants_objects(app, client, owned,
                                                                             settings):
    """Each route with an id: 200 for its owner, 404 for another merchant, who learns nothing."""
    checked = 0
    for _endpoint, method, rule in admin_rules(app):
        if "<" not in rule:
            continue
        url = fill(rule, owned)
        if method == "GET":  # 202: a report still being built
            assert call(client, method, url, OWNER_TOKEN).status_code in (200, 202), url
        resp = call(client, method, url, OTHER_TOKEN)
        assert resp.status_code in (403, 404), (url, resp.status_code)
        text = resp.get_data(as_text=True)
        assert owned["account"] not in text and "too slow" not in text
        assert not any(s in text for s in secrets_of(settings))
        checked += 1
    assert checked >= 6
    # The review is still waiting for its own merchant: the other's answer changed nothing.
    waiting = client.get("/v1/reviews", headers=OWNER_TOKEN).json["reviews"]
    assert owned["decision_id"] in [r["id"] for r in waiting]


def test_list_routes_show_only_the_tokens_merchant(app, client, owned):
    """Routes without an id (reviews, reports) answer another merchant without A's objects."""
    for _endpoint, method, rule in admin_rules(app):
        if "<" in rule or method != "GET":
            continue
        text = call(client, method, rule, OTHER_TOKEN).get_data(as_text=True)
        assert owned["account"] not in text and owned["decision_id"] not in text, rule


# --- Fuzzing the POST routes --------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12)
POST_RULES = sorted(FULL)
FIELD_PATHS = {rule: [path for path, _ in fields(schema_of(name), schema_of(name))]
               for rule, (name, _) in FULL.items()}


@st.composite
def hostile_bodies(draw: st.DrawFn) -> tuple[str, Any]:
    """(route, body): a full valid body with one field replaced, dropped or added, or garbage."""
    rule = draw(st.sampled_from(POST_RULES))
    body = FULL[rule][1]
    how = draw(st.sampled_from(["replace", "drop", "add", "whole"]))
    if how == "whole":
        return rule, draw(json_values)
    if how == "add":
        return rule, {**body, draw(st.text(min_size=1, max_size=12)): draw(json_values)}
    path = draw(st.sampled_from(FIELD_PATHS[rule]))
    parent = ".".join(path.split(".")[:-1])
    try:
        changed = set_at(body, path, draw(json_values))
    except (AssertionError, KeyError, IndexError):
        return rule, body
    if how == "drop":
        node: Any = changed
        for part in filter(None, parent.split(".")):
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, dict):
            node.pop(path.split(".")[-1], None)
    return rule, changed


@FUZZ
@given(case=hostile_bodies(), raw=st.booleans())
def _admin_post(client: Any, case: tuple[str, Any], raw: bool) -> None:
    TALLY["admin: fuzzed POST bodies"] += 1
    rule, body = case
    url = rule.replace("<decision_id>", "dec_none")
    data = json.dumps(body) if not raw else json.dumps(body).encode()[:-1]  # cut short
    resp = client.post(url, data=data, content_type="application/json", headers=OWNER_TOKEN)
    # 409: a second refund request for a payment that already has an open one
    assert resp.status_code in (200, 201, 202, 400, 404, 409), (url, resp.status_code, body)
    if resp.status_code >= 400:
        assert_error_shape(resp)
        field = resp.json["error"].get("field")
        assert field, resp.json
        known = set(FIELD_PATHS[rule]) | {"case", "at", "decision"}
        assert names_a_field_of(body, field, known), (field, body)


def test_hostile_admin_bodies_never_get_a_500_and_a_400_names_the_field(client, container):
    """Every field replaced by arbitrary JSON, dropped, an unknown one added, or garbage."""
    _admin_post(client)
