"""POST /v1/decisions/preview and `gateway policy evaluate`: the policy engine over HTTP and CLI."""

from __future__ import annotations

import json
from pathlib import Path

from cli.main import run as main

CASE = json.loads((Path(__file__).parents[2] / "docs/examples/theopenhost-refund-day-3.json")
                  .read_text())
TOKEN = {"Authorization": "Bearer test-admin-theopenhost-003"}
AT = "2025-03-04T10:00:00Z"


def test_a_case_is_decided_under_the_tokens_merchant_pack(client):
    """The bearer token picks the merchant; the answer is the cited Decision."""
    resp = client.post("/v1/decisions/preview", json={"case": CASE, "at": AT}, headers=TOKEN)
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["outcome"] == "partial_refund" and body["pack"] == "theopenhost"
    assert body["amounts"]["refund"] == {"amount": 11000, "currency": "USD"}
    assert any(r["clause"] == "003 §1.1a" for r in body["reasons"])


def test_no_token_or_a_wrong_token_gets_401(client):
    """Every admin route needs a merchant's bearer token."""
    assert client.post("/v1/decisions/preview", json={"case": CASE}).status_code == 401
    resp = client.post("/v1/decisions/preview", json={"case": CASE},
                       headers={"Authorization": "Bearer not-a-token-of-anyone"})
    assert resp.status_code == 401 and "token" in resp.json["error"]["message"]


def test_a_bad_case_gets_400_naming_the_field(client):
    """A Case with a wrong field is refused with the field's path, never guessed."""
    bad = json.loads(json.dumps(CASE))
    bad["order"]["amount"]["amount"] = "120.00"
    resp = client.post("/v1/decisions/preview", json={"case": bad, "at": AT}, headers=TOKEN)
    assert resp.status_code == 400
    assert resp.json["error"]["field"] == "case.order.amount.amount"


def test_a_body_without_a_case_gets_400(client):
    """A body that is not {"case": {...}} names the missing field; one that is not JSON at all
    is invalid_json, not a missing field."""
    resp = client.post("/v1/decisions/preview", json={"at": AT}, headers=TOKEN)
    assert resp.status_code == 400 and resp.json["error"]["field"] == "case"
    resp = client.post("/v1/decisions/preview", json={"case": CASE, "when": AT}, headers=TOKEN)
    assert resp.status_code == 400 and resp.json["error"]["field"] == "when"
    resp = client.post("/v1/decisions/preview", data="nope", headers=TOKEN)
    assert resp.status_code == 400 and resp.json["error"]["code"] == "invalid_json"


def test_the_cli_prints_the_decision_as_json(capsys, tmp_path):
    """`gateway policy evaluate` prints the same Decision the API gives."""
    path = tmp_path / "case.json"
    path.write_text(json.dumps(CASE))
    assert main(["policy", "evaluate", "--merchant", "theopenhost", "--at", AT, str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"] == "partial_refund"


def test_the_cli_explains_and_names_a_bad_field(capsys, tmp_path):
    """--explain prints a readable account; a bad Case exits 2 naming the field."""
    path = tmp_path / "case.json"
    path.write_text(json.dumps(CASE))
    assert main(["policy", "evaluate", "--merchant", "theopenhost", "--at", AT, "--explain",
                 str(path)]) == 0
    assert "003 §1.1a" in capsys.readouterr().out
    path.write_text(json.dumps({**CASE, "order": {**CASE["order"], "term_months": "one"}}))
    assert main(["policy", "evaluate", "--merchant", "theopenhost", str(path)]) == 2
    assert "order.term_months" in capsys.readouterr().err
