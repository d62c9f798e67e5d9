"""The reconciliation report from the CLI and the admin API."""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import pytest
import responses

from cli.main import run as gateway
from sandbox import samples
from service.config import Settings
from tests.conftest import make_settings
from tests.support import stripe as sig
from tests.support.cli import use_container_env
from tests.support.delivery import run_worker

EXPORTS = Path(__file__).parents[1] / "fixtures" / "exports"
HOST = {"Authorization": "Bearer test-admin-theopenhost-003"}
OTHER = {"Authorization": "Bearer test-admin-cloudbehind-002"}
PUBLIC_URL = "https://gateway.example.com"


@pytest.fixture
def settings(tmp_path: Path, database_url: str, redis_url: str, paypal_ca_file: Path
             ) -> Settings:
    """The test stores, and a public address (GATEWAY_PUBLIC_URL) for reports to link under."""
    return make_settings(tmp_path, database_url, redis_url, paypal_ca_file,
                         public_url=PUBLIC_URL)


def test_an_export_with_movements_we_never_recorded_exits_1_with_a_csv(
        container, monkeypatch, capsys, tmp_path):
    """Every movement in a Stripe export the ledger lacks is a row; the exit status says so."""
    use_container_env(monkeypatch, container)
    out = tmp_path / "report.csv"
    status = gateway(["report", "reconcile", "--merchant", "theopenhost", "--from", "2026-01-01",
                      "--to", "2026-02-01", "--format", "csv", "--output", str(out),
                      "--provider-export", str(EXPORTS / "stripe_balance_history.csv")])
    assert status == 1
    lines = out.read_text().splitlines()
    assert lines[0].startswith("kind,provider,provider_id,currency,")
    assert all(line.startswith("missing_in_ledger,stripe,") for line in lines[1:])
    assert len(lines) > 1


def test_a_clean_period_exits_0(container, monkeypatch, tmp_path):
    """Nothing at the provider and nothing in the ledger: no discrepancy, exit status 0."""
    use_container_env(monkeypatch, container)
    header_only = tmp_path / "empty.csv"
    header_only.write_text((EXPORTS / "stripe_balance_history.csv").read_text().splitlines()[0]
                           + "\n")
    assert gateway(["report", "reconcile", "--merchant", "theopenhost", "--from", "2026-01-01",
                    "--to", "2026-02-01", "--format", "json", "--output",
                    str(tmp_path / "r.json"), "--provider-export", str(header_only)]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["discrepancies"] == [] and report["merchant"] == "theopenhost"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_the_progress_line_erased_before_the_count(container, monkeypatch,
                                                                   tmp_path):
    """On a terminal the progress line is rewritten in place and erased before the final
    '<n> discrepancies', which then stands alone on its line."""
    use_container_env(monkeypatch, container)
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    status = gateway(["report", "reconcile", "--merchant", "theopenhost", "--from", "2026-01-01",
                      "--to", "2026-02-01", "--format", "html", "--output",
                      str(tmp_path / "r.html"),
                      "--provider-export", str(EXPORTS / "stripe_balance_history.csv")])
    written = terminal.getvalue()
    assert status == 1 and "\r\x1b[Kstaged provider records: " in written
    before, after = written.rsplit("\r\x1b[K", 1)
    assert re.fullmatch(r"[0-9]+ discrepancies\n", after), written
    assert "\n" not in before  # the progress stayed on one line, rewritten in place


@pytest.mark.parametrize(("base", "env", "link"), [
    (None, "", None),
    (None, "https://gw.example.com/", "https://gw.example.com/console/events/by-id/{event_id}"),
    ("https://other.example.com", "https://gw.example.com",
     "https://other.example.com/console/events/by-id/{event_id}"),
])
def test_event_links_are_absolute_under_the_base_url_or_absent(container, monkeypatch, tmp_path,
                                                               base, env, link):
    """--base-url, else GATEWAY_PUBLIC_URL, is where rows link to their events; neither: none."""
    use_container_env(monkeypatch, container)
    monkeypatch.setenv("GATEWAY_PUBLIC_URL", env)
    out = tmp_path / "r.json"
    args = ["report", "reconcile", "--merchant", "theopenhost", "--from", "2026-01-01", "--to",
            "2026-02-01", "--format", "json", "--output", str(out),
            "--provider-export", str(EXPORTS / "stripe_balance_history.csv")]
    assert gateway(args + (["--base-url", base] if base else [])) == 1
    assert json.loads(out.read_text())["event_link"] == link


def test_a_base_url_that_is_not_an_http_address_is_refused(container, monkeypatch, tmp_path,
                                                            capsys):
    """A --base-url such as javascript:... stops the command with exit status 2."""
    use_container_env(monkeypatch, container)
    status = gateway(["report", "reconcile", "--merchant", "theopenhost", "--from", "2026-01-01",
                      "--to", "2026-02-01", "--format", "html", "--base-url", "javascript:x"])
    assert status == 2 and "--base-url must be an http(s) address" in capsys.readouterr().err


def test_an_export_of_unknown_shape_is_an_error_naming_the_columns(container, monkeypatch,
                                                                   tmp_path, capsys):
    """A CSV that is neither export is refused with exit status 2."""
    use_container_env(monkeypatch, container)
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b,c\n1,2,3\n")
    assert gateway(["report", "reconcile", "--merchant", "theopenhost", "--from", "2026-01-01",
                    "--to", "2026-02-01", "--provider-export", str(odd)]) == 2


@responses.activate
def test_the_admin_api_reconciles_against_the_providers_apis(client, container):
    """GET /v1/reports/reconciliation reads Stripe's and PayPal's records for the period."""
    scenario = samples.Scenario(key="api-report", amount=1500,
                                period_start=1_767_225_600 + 3 * 86400)
    assert sig.post(client, samples.stripe_event("charge.succeeded", scenario)).status_code == 200
    run_worker(container)
    responses.get(re.compile(r"https://api\.stripe\.com/v1/balance_transactions.*"),
                  json={"object": "list", "data": [], "has_more": False,
                        "url": "/v1/balance_transactions"})
    responses.post("https://api-m.sandbox.paypal.com/v1/oauth2/token",
                   json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})
    responses.get(re.compile(r"https://api-m\.sandbox\.paypal\.com/v1/reporting/transactions.*"),
                  json={"transaction_details": [], "total_items": 0, "total_pages": 0,
                        "page": 1})
    never_arrived = samples.stripe_event("invoice.paid", scenario)
    delivered = samples.stripe_event("charge.succeeded", scenario)
    responses.get(re.compile(r"https://api\.stripe\.com/v1/events.*"),
                  json={"object": "list", "has_more": False, "url": "/v1/events",
                        "data": [never_arrived, delivered]})
    responses.get(re.compile(r"https://api-m\.sandbox\.paypal\.com/v1/notifications/"
                             r"webhooks-events.*"), json={"events": [], "count": 0, "links": []})
    started = client.post("/v1/reports/reconciliation", headers=HOST,
                          json={"from": "2026-01-01", "to": "2026-02-01"})
    assert started.status_code == 202 and started.json["status"] == "queued"
    location = started.headers["Location"]
    assert (location == started.json["location"]
            == f"/v1/reports/reconciliation/{started.json['id']}")
    waiting = client.get(location, headers=HOST)
    assert waiting.status_code == 202 and waiting.json["status"] == "queued"
    assert waiting.headers["Retry-After"]
    run_worker(container)
    resp = client.get(f"{location}?format=json", headers=HOST)
    assert resp.status_code == 200
    body = resp.get_json()
    row, missed = body["discrepancies"]
    assert (row["kind"], row["provider_id"]) == ("missing_at_provider", scenario.charge_id)
    assert (missed["kind"], missed["provider_id"]) == ("missed_event", never_arrived["id"])
    assert body["currencies"]["USD"]["gross_charges"] == 1500
    event = client.get(f"/v1/events/{row['event_id']}", headers=HOST)
    assert event.status_code == 200 and event.json["events"][0]["type"] == "charge.succeeded"
    assert body["event_link"] == f"{PUBLIC_URL}/console/events/by-id/{{event_id}}"
    html = client.get(f"{location}?format=html", headers=HOST)
    page = html.get_data(as_text=True)
    assert html.status_code == 200 and scenario.charge_id in page
    assert f'<a href="{PUBLIC_URL}/console/events/by-id/{row["event_id"]}">' in page  # the worker's
    assert client.get(location, headers=OTHER).status_code == 404


@responses.activate
def test_a_report_the_providers_cannot_serve_fails_with_the_reason(client, container):
    """Stripe answering 500: the report's GET answers 502 saying so, once the job ran."""
    responses.get(re.compile(r"https://api\.stripe\.com/v1/.*"), status=500,
                  json={"error": {"type": "api_error", "message": "stripe is down"}})
    responses.post("https://api-m.sandbox.paypal.com/v1/oauth2/token",
                   json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})
    started = client.post("/v1/reports/reconciliation", headers=HOST,
                          json={"from": "2026-01-01", "to": "2026-02-01"})
    run_worker(container)
    failed = client.get(started.headers["Location"], headers=HOST)
    assert failed.status_code == 502 and failed.json["error"]["code"] == "report_failed"


def test_bad_report_parameters_name_the_field(client):
    """Dates, their order and the format are checked."""
    for body, field in [({"from": "x", "to": "2026-02-01"}, "from"),
                        ({"from": "2026-01-01", "to": ""}, "to"),
                        ({"from": "2026-02-30", "to": "2026-03-01"}, "from"),
                        ({"from": "2026-02-01", "to": "2026-01-01"}, "to")]:
        resp = client.post("/v1/reports/reconciliation", json=body, headers=HOST)
        assert resp.status_code == 400 and resp.json["error"]["field"] == field, body
    resp = client.get("/v1/reports/reconciliation/rpt_x?format=pdf", headers=HOST)
    assert resp.status_code == 400 and resp.json["error"]["field"] == "format"
    assert client.get("/v1/reports/reconciliation/rpt_none", headers=HOST).status_code == 404


def test_reports_need_a_token(client):
    """No token, no report."""
    assert client.post("/v1/reports/reconciliation", json={"from": "2026-01-01",
                                                           "to": "2026-02-01"}
                       ).status_code == 401
