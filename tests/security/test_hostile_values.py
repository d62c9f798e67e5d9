"""Signed but hostile: a valid signature says who sent a body, not that its values are sane.

For every routed Stripe and PayPal event type, bodies signed with the merchant's real test secret
carry huge, negative, fractional, textual, NaN and Infinity amounts, far-past and far-future
times, unknown currencies and over-long ids. None gets a 500; nothing out of range reaches the
ledger (an event carrying such a value is stored ``ignored`` with the reason); every stored event
reads back through the API as valid JSON. Admin bodies get the same treatment: integers past
2^63, lone surrogates and extreme datetimes get a 400 naming the field, and no request is left
``received`` for ever.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
import responses
from sqlalchemy import select

from ledger.bounds import MAX_AMOUNT
from ledger.models import InboxEvent, InboxStatus, RequestStatus, SupportRequest
from policy.money import is_payable
from sandbox import samples
from tests.security.bodies import FULL
from tests.security.fuzz import TALLY, assert_error_shape
from tests.support import stripe as sig
from tests.support.delivery import PAYPAL_MERCHANT, PAYPAL_WEBHOOK_ID, drain_everything, settle
from tests.support.ledger import PROVIDER_OBJECTS
from tests.support.paypal import dispute_event, shared_signer
from workers.routes import ROUTES

TOKEN = {"Authorization": "Bearer test-admin-theopenhost-003"}
SCENARIO = samples.Scenario(key="hostile", amount=12000)
PAYPAL_SCENARIO = samples.Scenario(key="hostile-pp", amount=12000, payment_method="paypal")
HUGE_NUMBERS: list[Any] = [10**20, -(10**20), 2**63, -500, 12.5, "1200", math.nan, math.inf,
                           -math.inf]
TIMES = ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59",
         "0001-01-01T00:00:00+23:59"]
TEXTS = ["x" * 300, "\ud800", "ZZZ"]


def _stripe_base(event_type: str) -> dict[str, Any]:
    sample_type = "charge.dispute.created" if event_type.startswith("charge.dispute.") \
        else event_type
    event = samples.stripe_event(sample_type, SCENARIO)
    event["type"] = event_type
    return event


def _paypal_base(event_type: str) -> dict[str, Any]:
    if event_type.startswith("CUSTOMER.DISPUTE."):
        return dispute_event(PAYPAL_SCENARIO.paypal_sale_id, "OPEN")
    return samples.paypal_event(event_type, PAYPAL_SCENARIO)


def _set(event: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(event))
    *parents, last = path.split(".")
    node = out
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return out


def _stripe_variants(event_type: str) -> list[dict[str, Any]]:
    base = _stripe_base(event_type)
    variants = [_set(base, "created", n) for n in (10**20, -(10**20), 2**40, 0)]
    for field in ("amount", "amount_due", "amount_paid", "amount_refunded", "created",
                  "current_period_end", "canceled_at"):
        if field in base["data"]["object"]:
            variants += [_set(base, f"data.object.{field}", n) for n in HUGE_NUMBERS]
    variants += [_set(base, "data.object.currency", c) for c in ("zzz", "usdollar", "\ud800")]
    variants += [_set(base, "data.object.id", t) for t in TEXTS[:2]]
    variants += [_set(base, "data.object.customer", t) for t in TEXTS[:2]]
    return variants


def _paypal_variants(event_type: str) -> list[dict[str, Any]]:
    base = _paypal_base(event_type)
    resource = base["resource"]
    variants = [_set(base, "create_time", t) for t in TIMES]
    variants += [_set(base, "resource.update_time", t) for t in TIMES]
    variants += [_set(base, "resource.create_time", t) for t in TIMES]
    for key in ("amount", "dispute_amount"):
        if isinstance(resource.get(key), dict):
            money = "value" if "value" in resource[key] else "total"
            cur = "currency_code" if "currency_code" in resource[key] else "currency"
            variants += [_set(base, f"resource.{key}.{money}", v)
                         for v in ("1e999999", "NaN", "-5.00", "12.345", "9" * 40, 5, "Infinity")]
            variants += [_set(base, f"resource.{key}.{cur}", c) for c in ("ZZZ", "\ud800")]
    variants += [_set(base, "resource.id", t) for t in TEXTS[:2]]
    return variants


def _post_stripe(client: Any, event: dict[str, Any]) -> Any:
    raw = json.dumps(event).encode()  # NaN and Infinity as Python writes them
    return client.post(f"/webhooks/{sig.MERCHANT}/stripe", data=raw, content_type=(
        "application/json"), headers={"Stripe-Signature": sig.signature(raw)})


def _post_paypal(client: Any, event: dict[str, Any]) -> Any:
    raw = json.dumps(event).encode()
    return client.post(f"/webhooks/{PAYPAL_MERCHANT}/paypal", data=raw,
                       content_type="application/json",
                       headers=shared_signer().headers(raw, PAYPAL_WEBHOOK_ID))


def _deliver_all(client: Any, provider: str, variants: list[dict[str, Any]],
                 post: Callable[[Any, dict[str, Any]], Any]) -> None:
    for i, event in enumerate(variants):
        event["id"] = f"{event['id'][:40]}-hostile-{i}"
        resp = post(client, event)
        TALLY[f"webhooks: hostile values, signed ({provider})"] += 1
        assert resp.status_code in (200, 400), (resp.status_code, resp.get_data(as_text=True))
        if resp.status_code == 400:
            assert_error_shape(resp)


def _assert_ledger_sane(container: Any) -> None:
    """Every amount a whole number within range, every currency real, every time 2000-2100."""
    with container.sessions() as session:
        for model in PROVIDER_OBJECTS:
            for row in session.scalars(select(model)):
                for column in model.__table__.columns:
                    value = getattr(row, column.key)
                    if column.key.startswith("amount") and value is not None:
                        assert isinstance(value, int) and 0 <= value <= MAX_AMOUNT, (row, value)
                    if column.key == "currency" and value is not None:
                        assert is_payable(value), (row, value)
                    if isinstance(value, datetime) and column.key != "version_at":
                        assert 2000 <= value.year < 2100, (row, column.key, value)


def _assert_events_read_back(client: Any, container: Any) -> None:
    with container.sessions() as session:
        ids = list(session.scalars(select(InboxEvent.event_id)))
    for event_id in ids:
        resp = client.get(f"/v1/events/{event_id}", headers=TOKEN)
        if resp.status_code == 404:  # stored for another merchant (PayPal's is theopenhost too)
            continue
        assert resp.status_code == 200
        json.loads(resp.get_data(as_text=True), parse_constant=_refuse)


def _refuse(name: str) -> Any:
    raise AssertionError(f"{name} in a JSON answer")


@responses.activate
def test_signed_hostile_values_never_reach_the_ledger(client, container):
    """Every routed event type, every hostile value: 200 or 400, never 500; the ledger holds
    only sane values; every stored event reads back as valid JSON."""
    for (provider, event_type) in ROUTES:
        if provider == "stripe":
            _deliver_all(client, provider, _stripe_variants(event_type), _post_stripe)
        else:
            _deliver_all(client, provider, _paypal_variants(event_type), _post_paypal)
    drain_everything(container)
    _assert_ledger_sane(container)
    _assert_events_read_back(client, container)
    with container.sessions() as session:
        ignored = session.scalars(select(InboxEvent.status_reason).where(
            InboxEvent.status == InboxStatus.IGNORED)).all()
    assert any("out of range" in (r or "") for r in ignored)
    assert any("not between 2000 and 2100" in (r or "") for r in ignored)


def test_nan_and_infinity_are_not_json(client, container):
    """A signed body carrying NaN or Infinity is refused as malformed JSON, and not stored."""
    for value in (math.nan, math.inf, -math.inf):
        resp = _post_stripe(client, _set(_stripe_base("charge.succeeded"), "data.object.amount",
                                         value))
        assert resp.status_code == 400 and resp.json["error"]["code"] == "malformed_json"
    with container.sessions() as session:
        assert session.scalars(select(InboxEvent)).all() == []


def test_a_huge_stripe_timestamp_is_stored_ignored_and_acknowledged(client, container):
    """``created`` = 10^20: 200 (the provider stops retrying), stored ignored with the reason."""
    resp = _post_stripe(client, _set(_stripe_base("charge.succeeded"), "created", 10**20))
    assert resp.status_code == 200 and resp.json["status"] == "ignored"
    settle(container)
    with container.sessions() as session:
        (row,) = session.scalars(select(InboxEvent)).all()
    assert row.status == InboxStatus.IGNORED and "2000 and 2100" in (row.status_reason or "")


def test_a_negative_amount_is_stored_ignored_with_the_reason(client, container):
    """A charge of -500: stored, never applied, ignored naming the column and the value."""
    _post_stripe(client, _set(_stripe_base("charge.succeeded"), "data.object.amount", -500))
    drain_everything(container)
    with container.sessions() as session:
        (row,) = session.scalars(select(InboxEvent)).all()
    assert row.status == InboxStatus.IGNORED
    assert "payments.amount = -500" in (row.status_reason or "")


# --- Admin bodies ---------------------------------------------------------------------------------

EXTREMES: list[Any] = [2**63, 2**64, -(2**63) - 1, 10**30, "\ud800", "a\udfffb",
                       "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59",
                       "2999-01-01T00:00:00Z", "1999-12-31T23:59:59Z"]


def _leaves(body: Any, path: str = "") -> list[str]:
    if isinstance(body, dict):
        return [p for k, v in body.items() for p in _leaves(v, f"{path}.{k}" if path else k)]
    if isinstance(body, list):
        return [p for i, v in enumerate(body) for p in _leaves(v, f"{path}.{i}")]
    return [path]


def _with(body: Any, path: str, value: Any) -> Any:
    out = json.loads(json.dumps(body))
    *parents, last = path.split(".")
    node = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


@pytest.mark.parametrize("route", sorted(r for r in FULL if r != "/v1/reviews/<decision_id>"))
@responses.activate
def test_extreme_admin_values_get_a_400_naming_the_field(client, container, route):
    """Every field of every admin body set to each extreme: never a 500; a 400 names the
    field; whatever is accepted, a worker decides (nothing stays received)."""
    body = FULL[route][1]
    for path in _leaves(body):
        for value in EXTREMES:
            TALLY["admin: extreme values in every field"] += 1
            resp = client.post(route, json=_with(body, path, value), headers=TOKEN)
            assert resp.status_code in (200, 201, 202, 400, 409), (path, value, resp.status_code)
            if resp.status_code == 400:
                assert_error_shape(resp)
                field = resp.json["error"]["field"]
                assert field == path or path.startswith(field) or field.startswith(path) or \
                    field in ("case", "body"), (path, value, field)
    drain_everything(container)
    with container.sessions() as session:
        stuck = session.scalars(select(SupportRequest).where(
            SupportRequest.status == RequestStatus.RECEIVED)).all()
    assert stuck == []
