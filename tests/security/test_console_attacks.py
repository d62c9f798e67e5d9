"""The operations console against hostile input: addresses and form values chosen to make it
fail (ids too large for the database, report ids the queue refuses, amounts that are not
amounts), responses outside its views that must still carry its headers, and sessions that
must end when the merchant's admin token changes."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import select

from gateway.console import SIGN_IN_COOKIE
from ledger.models import Action, Decision, InboxEvent
from sandbox import samples
from tests.support.claims import headers, in_review, send
from tests.support.console import sign_in
from tests.support.delivery import settle
from workers import reports
from workers.actions import new_id

MERCHANT = "theopenhost"

TOO_LARGE = "9223372036854775808"  # one more than the largest BIGINT


@pytest.mark.parametrize("path", [
    f"/console/events/{TOO_LARGE}", f"/console/events/{TOO_LARGE}/replay",
    "/console/events/99999999999999999999999",
    "/console/reports/a%20b", "/console/reports/%C3%A9/report.csv", "/console/reports/a%00b",
    "/console/reports/rpt:x/report.json",
])
def test_an_id_the_stores_cannot_hold_is_not_found(client, path):
    sign_in(client)
    assert client.get(path).status_code == 404


def test_replaying_an_event_id_too_large_for_the_database_is_not_found(client):
    csrf = sign_in(client)
    resp = client.post(f"/console/events/{TOO_LARGE}/replay", data={"csrf_token": csrf})
    assert resp.status_code == 404


def test_the_admin_api_answers_a_report_id_the_queue_refuses_with_404(client):
    resp = client.get("/v1/reports/reconciliation/a%20b", headers=headers(MERCHANT))
    assert resp.status_code == 404


@pytest.mark.parametrize("amount", [
    "Infinity", "-Infinity", "1e999999999", "9" * 5000, "1e30", "\u0661\u0662", "1_000",
    " 1 2", "0x10",
])
def test_an_approval_with_what_is_not_an_amount_is_refused(client, container, amount):
    _, decision_id = in_review(client, container, f"console-amount-{len(amount)}")
    csrf = sign_in(client)
    resp = client.post(f"/console/decisions/{decision_id}/answer", data={
        "csrf_token": csrf, "answer": "approve", "currency": "USD", "refund": amount})
    assert resp.status_code == 400, resp.status_code
    with container.sessions() as s:
        assert s.get(Decision, decision_id).status == "needs_review"
        assert not s.scalars(select(Action).where(Action.decision_id == decision_id)).first()


@pytest.mark.parametrize("currency", ["", "None", "US"])
def test_an_approval_in_what_is_not_a_currency_is_refused(client, container, currency):
    _, decision_id = in_review(client, container, f"console-currency-{currency}")
    csrf = sign_in(client)
    resp = client.post(f"/console/decisions/{decision_id}/answer", data={
        "csrf_token": csrf, "answer": "approve", "currency": currency, "credit": "5"})
    assert resp.status_code == 400
    with container.sessions() as s:
        assert s.get(Decision, decision_id).status == "needs_review"


@pytest.mark.parametrize("method,path", [
    ("GET", "/console/no-such-page"), ("GET", "/console/reviews/x"),
    ("PUT", "/console/reviews"), ("DELETE", "/console/sign-in"), ("GET", "/console/sign-out"),
])
def test_a_console_address_no_view_answers_still_carries_the_consoles_headers(
        client, method, path):
    sign_in(client)
    resp = client.open(path, method=method)
    assert resp.status_code in (404, 405)
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Cache-Control"] == "no-store"


def test_the_api_keeps_its_own_headers(client):
    resp = client.get("/v1/no-such-thing", headers=headers(MERCHANT))
    assert "Content-Security-Policy" not in resp.headers


def test_a_session_ends_when_the_merchants_admin_token_changes(client, container):
    sign_in(client)
    merchants = container.settings.merchants
    merchants[MERCHANT] = replace(merchants[MERCHANT], admin_token="a-new-admin-token-0123456789")
    resp = client.get("/console/reviews")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/console/sign-in")


def test_a_session_ends_when_its_merchant_is_removed(client, container):
    sign_in(client)
    del container.settings.merchants[MERCHANT]
    resp = client.get("/console/reviews")
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/console/sign-in")


# --- tokens the browser sends -----------------------------------------------------------------


def test_a_form_token_that_is_not_ascii_is_refused_not_an_error(client):
    client.get("/console/sign-in")
    resp = client.post("/console/sign-in", data={"csrf_token": "\u00e9", "reviewer": "kim",
                                                 "token": "x"})
    assert resp.status_code == 400
    sign_in(client)
    assert client.post("/console/sign-out", data={"csrf_token": "\u00e9"}).status_code == 400
    assert client.get("/console/reviews").status_code == 200  # still signed in


def test_a_sign_in_cookie_that_is_not_ascii_is_refused_not_an_error(client):
    client.set_cookie(SIGN_IN_COOKIE, "\u00e9", path="/console")
    resp = client.post("/console/sign-in", data={"csrf_token": "x", "reviewer": "kim",
                                                 "token": "x"})
    assert resp.status_code == 400


# --- another merchant's reports -----------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "/report.csv", "/report.json"])
def test_another_merchants_report_is_not_found(client, container, suffix):
    report_id = new_id("rpt")
    reports.start(container, report_id, MERCHANT, date(2026, 10, 1), date(2026, 11, 1),
                  ["stripe"])
    sign_in(client, merchant="cloudbehind")
    assert client.get(f"/console/reports/{report_id}{suffix}").status_code == 404


# --- markup in what the console shows ---------------------------------------------------------


MARKUP = '"><img src=x onerror=alert(1)><script>alert(2)</script>'


def _no_markup(text: str) -> None:
    assert "<script>alert" not in text and "<img src=x" not in text
    assert not re.search(r"<[^>]*onerror", text)


def test_an_events_type_and_id_show_as_text(client, container):
    event = samples.stripe_event("charge.succeeded", samples.Scenario(key="console-markup"))
    event["type"] = "charge.succeeded" + MARKUP
    event["id"] = "evt_" + MARKUP
    send(client, MERCHANT, event)
    settle(container)
    sign_in(client)
    with container.sessions() as s:
        row = s.scalars(select(InboxEvent).where(InboxEvent.merchant == MERCHANT)).one()
    for path in ("/console/events", f"/console/events/{row.id}",
                 f"/console/events/{row.id}/replay"):
        _no_markup(client.get(path).get_data(as_text=True))


def test_a_reviewers_name_and_note_show_as_text(client, container):
    scenario, decision_id = in_review(client, container, "console-reviewer-markup")
    csrf = sign_in(client, reviewer=MARKUP)
    resp = client.post(f"/console/decisions/{decision_id}/answer", data={
        "csrf_token": csrf, "answer": "deny", "note": MARKUP})
    assert resp.status_code == 302
    for path in (f"/console/decisions/{decision_id}", f"/console/accounts/{scenario.customer_id}",
                 "/console/reviews"):
        _no_markup(client.get(path).get_data(as_text=True))
