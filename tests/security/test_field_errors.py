"""Every field of a Case and of every admin request body, made wrong: the 400 names that field.

The walk follows the JSON schemas themselves (``policy/case_schema.json`` and
``gateway/validation.py``), so a field added to a schema is tested without a new line here.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.bodies import FULL, fields, schema_of, set_at, wrong_values
from tests.security.fuzz import TALLY

TOKEN = {"Authorization": "Bearer test-admin-theopenhost-003"}


def url_of(rule: str) -> str:
    return rule.replace("<decision_id>", "dec_none")


def cases() -> list[tuple[str, str, Any]]:
    out = []
    for rule, (name, _) in FULL.items():
        schema = schema_of(name)
        for path, node in fields(schema, schema):
            out += [(rule, path, value) for value in wrong_values(node)]
    return out


CASES = cases()


@pytest.mark.parametrize("rule", sorted(FULL))
def test_the_full_body_of_every_route_is_accepted(client, container, rule):
    """The bodies the walk breaks are valid to begin with (a review of no decision is 404)."""
    resp = client.post(url_of(rule), json=FULL[rule][1], headers=TOKEN)
    assert resp.status_code in (200, 201, 202, 404), resp.json
    if resp.status_code == 404:
        assert resp.json["error"]["field"] == "decision"


def test_every_schema_field_is_walked():
    """The walk reaches nested fields, array items and money alike."""
    walked = {(rule, path) for rule, path, _ in CASES}
    for expected in [("/v1/decisions/preview", "case.account.invoices.0.amount.currency"),
                     ("/v1/decisions/preview", "case.request.identity.verified"),
                     ("/v1/decisions/preview", "case.uptime.measured_percent"),
                     ("/v1/refund-requests", "addons.0"),
                     ("/v1/reviews/<decision_id>", "refund.amount")]:
        assert expected in walked
    assert len(CASES) > 300


def test_a_wrong_value_in_any_field_gets_400_naming_that_field(client, container):
    """Wrong type, out of range, too long, not matching, not in the enum: field named exactly."""
    wrong = []
    for rule, path, value in CASES:
        TALLY["admin: one wrong field per request"] += 1
        resp = client.post(url_of(rule), json=set_at(FULL[rule][1], path, value), headers=TOKEN)
        if resp.status_code != 400 or resp.json["error"].get("field") != path:
            wrong.append((rule, path, value, resp.status_code, resp.json))
    assert wrong == []
