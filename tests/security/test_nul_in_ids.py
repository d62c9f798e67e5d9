"""A NUL character in an id or a search (PostgreSQL refuses it in any string it is sent) is an
id nothing has: 404 or 400, never a 500, on either database."""

from __future__ import annotations

import pytest

from tests.support.claims import headers
from tests.support.console import sign_in

MERCHANT = "theopenhost"
API = ["/v1/decisions/dec%00x", "/v1/refund-requests/req%00x", "/v1/cancellations/c%00x",
       "/v1/uptime-claims/u%00x", "/v1/events/evt%00x", "/v1/accounts/cus%00x/credit",
       "/v1/reports/reconciliation/rpt%00x"]
CONSOLE = ["/console/decisions/dec%00x", "/console/accounts/cus%00x",
           "/console/events/by-id/evt%00x", "/console/reports/rpt%00x",
           "/console/reports/rpt%00x/report.csv"]


@pytest.mark.parametrize("path", API)
def test_the_admin_api_answers_an_id_with_a_nul_as_not_found(client, path):
    resp = client.get(path, headers=headers(MERCHANT))
    assert resp.status_code == 404, resp.get_data(as_text=True)


def test_replaying_an_event_id_with_a_nul_is_not_found(client):
    resp = client.post("/v1/events/evt%00x/replay", headers=headers(MERCHANT))
    assert resp.status_code == 404


@pytest.mark.parametrize("path", CONSOLE)
def test_the_console_answers_an_id_with_a_nul_as_not_found(client, path):
    sign_in(client)
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("query", [{"q": "a\x00b"}])
def test_an_account_search_with_a_nul_finds_nothing(client, query):
    sign_in(client)
    resp = client.get("/console/accounts", query_string=query)
    assert resp.status_code in (200, 400) and "No account matches" in resp.get_data(as_text=True)
