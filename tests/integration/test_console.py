"""The operations console through Flask's test client: signing in, the review queue, accounts,
events and replay, reconciliation, and what it refuses (no session, no CSRF token, another
merchant's objects, a webhook's markup)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
import responses
from sqlalchemy import select

from gateway.app import create_app
from ledger.models import AuditEntry, Decision, InboxEvent
from sandbox import samples
from tests.support.claims import in_review, paid, send
from tests.support.console import csrf_of, sign_in
from tests.support.delivery import dead_event, run_worker
from tests.support.providers import provider_apis_answered

MERCHANT = "theopenhost"
PAGES = ["/console/", "/console/reviews", "/console/decisions/dec_x", "/console/accounts",
         "/console/accounts/cus_x", "/console/events", "/console/events/1",
         "/console/events/by-id/evt_x", "/console/events/1/replay", "/console/events/replay-dead",
         "/console/reports", "/console/reports/rpt_x", "/console/reports/rpt_x/report.csv"]
FORMS = ["/console/decisions/dec_x/answer", "/console/events/1/replay",
         "/console/events/replay-dead", "/console/reports", "/console/sign-out"]


def _text(resp: Any) -> str:
    return str(resp.get_data(as_text=True))


# --- without a session -----------------------------------------------------------------------


@pytest.mark.parametrize("path", PAGES)
def test_every_page_sends_a_stranger_to_sign_in(client, path):
    resp = client.get(path)
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("/console/sign-in")


@pytest.mark.parametrize("path", FORMS)
def test_every_form_refuses_a_stranger(client, path):
    resp = client.post(path, data={"csrf_token": "x"})
    assert resp.status_code == 302 and resp.headers["Location"].startswith("/console/sign-in")


def test_sign_in_takes_the_token_and_sets_a_session_cookie_with_its_flags(client):
    page = client.get("/console/sign-in")
    assert page.status_code == 200 and 'type="password"' in _text(page)
    resp = client.post("/console/sign-in", data={
        "csrf_token": csrf_of(page), "reviewer": "kim", "token": "test-admin-theopenhost-003",
        "next": "/console/events?status=dead"})
    assert resp.status_code == 302 and resp.headers["Location"] == "/console/events?status=dead"
    cookie = next(c for c in resp.headers.getlist("Set-Cookie")
                  if c.startswith("gateway_console="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "samesite"} <= flags and "SameSite=Lax" in cookie
    assert "secure" not in flags  # a sandbox merchant: served over http in development
    assert "Path=/console" in cookie
    assert client.get("/console/reviews").status_code == 200


def test_a_live_merchants_session_cookie_is_secure(client, container):
    from dataclasses import replace

    from service.config import Mode
    from tests.support.claims import TOKENS

    merchants = container.settings.merchants
    merchants[MERCHANT] = replace(merchants[MERCHANT], mode=Mode.LIVE)
    page = client.get("/console/sign-in")
    resp = client.post("/console/sign-in", data={
        "csrf_token": csrf_of(page), "reviewer": "kim", "token": TOKENS[MERCHANT]})
    cookie = next(c for c in resp.headers.getlist("Set-Cookie")
                  if c.startswith("gateway_console="))
    assert "Secure" in cookie


@pytest.mark.parametrize("next_page", ["https://evil.example/", "//evil.example/x",
                                       "/console/\\evil", "/v1/reviews"])
def test_sign_in_goes_back_only_to_a_console_page(client, next_page):
    page = client.get("/console/sign-in")
    resp = client.post("/console/sign-in", data={
        "csrf_token": csrf_of(page), "reviewer": "kim", "token": "test-admin-theopenhost-003",
        "next": next_page})
    assert resp.headers["Location"] == "/console/reviews"


def test_a_wrong_token_is_refused_and_repeated_failures_wait(client, container):
    limit = container.settings.signature_failure_limit
    for _ in range(limit):
        page = client.get("/console/sign-in")
        resp = client.post("/console/sign-in", data={
            "csrf_token": csrf_of(page), "reviewer": "kim", "token": "not-the-token"})
        assert resp.status_code == 401
        assert "not valid" in _text(resp)
    page = client.get("/console/sign-in")
    blocked = client.post("/console/sign-in", data={
        "csrf_token": csrf_of(page), "reviewer": "kim", "token": "test-admin-theopenhost-003"})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert client.get("/console/reviews").status_code == 302  # not signed in


def test_sign_in_without_its_form_token_is_refused(client):
    client.get("/console/sign-in")
    resp = client.post("/console/sign-in", data={
        "reviewer": "kim", "token": "test-admin-theopenhost-003"})
    assert resp.status_code == 400
    assert client.get("/console/reviews").status_code == 302


def test_sign_out_ends_the_session(client):
    csrf = sign_in(client)
    assert client.post("/console/sign-out", data={"csrf_token": csrf}).status_code == 302
    assert client.get("/console/reviews").status_code == 302


def test_pages_forbid_framing_and_scripts(client):
    sign_in(client)
    resp = client.get("/console/reviews")
    assert "script-src" not in resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["Cache-Control"] == "no-store"


# --- the review queue ------------------------------------------------------------------------


@responses.activate
def test_a_review_approved_with_a_partial_refund_shows_the_providers_refund(client, container):
    scenario, decision_id = in_review(client, container, "console-approve")
    provider_apis_answered(refund_id="re_console_1")
    csrf = sign_in(client, reviewer="kim@support")
    queue = _text(client.get("/console/reviews"))
    assert decision_id in queue and "120.00 USD left of 120.00 USD" in queue
    page = client.get(f"/console/decisions/{decision_id}")
    assert page.status_code == 200 and "Approve" in _text(page) and "left to refund" in _text(page)
    resp = client.post(f"/console/decisions/{decision_id}/answer", data={
        "csrf_token": csrf, "answer": "approve", "currency": "USD", "refund": "45.00",
        "note": "light use"})
    assert resp.status_code == 302
    waiting = _text(client.get(f"/console/decisions/{decision_id}"))
    assert 'http-equiv="refresh"' in waiting  # its refund is running
    run_worker(container)
    done = _text(client.get(f"/console/decisions/{decision_id}"))
    assert "re_console_1" in done and "45.00 USD" in done and "75.00 USD" in done
    account = _text(client.get(f"/console/accounts/{scenario.customer_id}"))
    payment_row = re.search(rf"<tr><td class=\"id\">{scenario.charge_id}</td>.*?</tr>",
                            account)
    assert payment_row and "45.00 USD" in payment_row.group(0)  # refunded, as the ledger has it
    assert 'http-equiv="refresh"' not in done
    with container.sessions() as s:
        decision = s.get(Decision, decision_id)
        assert decision.reviewed_by == "kim@support" and decision.review_note == "light use"
        assert s.scalars(select(AuditEntry).where(
            AuditEntry.subject == decision_id, AuditEntry.action == "review.approved")
        ).one().actor == "kim@support"


@pytest.mark.parametrize(("refund", "message"), [
    ("120.01", "left"), ("12.345", "decimals"), ("-5", "more than zero"), ("ten", "amount"),
    ("", "needs a refund or a credit"),
])
def test_an_approval_the_ledger_cannot_pay_is_refused_and_changes_nothing(
        client, container, refund, message):
    _, decision_id = in_review(client, container, f"console-bad-{refund or 'none'}")
    csrf = sign_in(client)
    resp = client.post(f"/console/decisions/{decision_id}/answer", data={
        "csrf_token": csrf, "answer": "approve", "currency": "USD", "refund": refund})
    assert resp.status_code == 400 and message in _text(resp)
    with container.sessions() as s:
        assert s.get(Decision, decision_id).status == "needs_review"


def test_a_review_denied_with_a_note(client, container):
    _, decision_id = in_review(client, container, "console-deny")
    csrf = sign_in(client, reviewer="ana")
    resp = client.post(f"/console/decisions/{decision_id}/answer", data={
        "csrf_token": csrf, "answer": "deny", "note": "outside the policy"})
    assert resp.status_code == 302
    page = _text(client.get(f"/console/decisions/{decision_id}"))
    assert "reviewed by ana" in page and "outside the policy" in page
    assert decision_id not in _text(client.get("/console/reviews"))
    again = client.post(f"/console/decisions/{decision_id}/answer", data={
        "csrf_token": csrf, "answer": "deny"})
    assert again.status_code == 409


def test_a_form_without_its_csrf_token_changes_nothing(client, container):
    _, decision_id = in_review(client, container, "console-csrf")
    sign_in(client)
    for data in ({"answer": "deny"}, {"answer": "deny", "csrf_token": "forged"}):
        resp = client.post(f"/console/decisions/{decision_id}/answer", data=data)
        assert resp.status_code == 400 and "nothing was changed" in _text(resp)
    with container.sessions() as s:
        assert s.get(Decision, decision_id).status == "needs_review"


def test_another_merchants_objects_are_not_found(client, container):
    _, decision_id = in_review(client, container, "console-theirs")
    scenario = paid(client, container, "console-their-account", days_ago=1)
    csrf = sign_in(client, merchant="cloudbehind")
    assert client.get(f"/console/decisions/{decision_id}").status_code == 404
    resp = client.post(f"/console/decisions/{decision_id}/answer",
                       data={"csrf_token": csrf, "answer": "deny"})
    assert resp.status_code == 404
    assert client.get(f"/console/accounts/{scenario.customer_id}").status_code == 404
    with container.sessions() as s:
        event = s.scalars(select(InboxEvent).where(InboxEvent.merchant == MERCHANT)).first()
    assert client.get(f"/console/events/{event.id}").status_code == 404
    assert client.get(f"/console/events/by-id/{event.event_id}").status_code == 404
    assert client.post(f"/console/events/{event.id}/replay",
                       data={"csrf_token": csrf}).status_code == 404
    found = _text(client.get("/console/accounts", query_string={"q": scenario.customer_id}))
    assert "No account matches" in found


# --- accounts ----------------------------------------------------------------------------------


def test_an_email_a_payer_typed_on_a_charge_leads_to_no_account(client, container):
    """Only the customer's e-mail (as its invoices carry it) finds the account: a charge's
    billing details and receipt e-mail are whatever the payer typed."""
    made = samples.Scenario(key="console-typed", customer_email="owner@example.com")
    charge = samples.stripe_event("charge.succeeded", made)
    obj = charge["data"]["object"]
    obj["billing_details"]["email"] = obj["receipt_email"] = "victim@example.com"
    send(client, MERCHANT, charge)
    run_worker(container)
    sign_in(client)
    found = client.get("/console/accounts", query_string={"q": "victim@example.com"})
    assert found.status_code == 200 and "No account matches" in _text(found)


def test_an_account_is_found_by_email_customer_or_payment(client, container):
    scenario = paid(client, container, "console-find", days_ago=2,
                    customer_email="Finder@Example.com")
    sign_in(client)
    for query in (scenario.customer_id, scenario.charge_id, "finder@example.com"):
        resp = client.get("/console/accounts", query_string={"q": query})
        assert resp.status_code == 302, query
        assert resp.headers["Location"] == f"/console/accounts/{scenario.customer_id}"
    page = _text(client.get(f"/console/accounts/{scenario.customer_id}"))
    for shown in (scenario.subscription_id, scenario.invoice_id, scenario.charge_id, "120.00 USD"):
        assert shown in page, shown


# --- events ------------------------------------------------------------------------------------


def test_a_dead_event_is_found_replayed_and_shown_waiting(client, container):
    dead = dead_event(client, container, key="console-dead")
    csrf = sign_in(client, reviewer="sam")
    listing = _text(client.get("/console/events", query_string={"status": "dead"}))
    assert dead.event_id in listing and "has no amount" in listing
    assert "Replay every dead event" in listing
    page = _text(client.get(f"/console/events/{dead.id}"))
    assert "Paypal-Transmission-Sig" in page and "PAYMENT.SALE.COMPLETED" in page
    confirm = client.get(f"/console/events/{dead.id}/replay")
    assert confirm.status_code == 200 and "Yes, replay" in _text(confirm)
    resp = client.post(f"/console/events/{dead.id}/replay", data={"csrf_token": csrf})
    assert resp.status_code == 302
    shown = _text(client.get(f"/console/events/{dead.id}"))
    assert 'id="event-status">pending<' in shown and 'http-equiv="refresh"' in shown
    with container.sessions() as s:
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "event.replayed")
                         ).one().actor == "sam"


def test_a_processed_event_is_not_replayed(client, container):
    paid(client, container, "console-processed", days_ago=1)
    csrf = sign_in(client)
    with container.sessions() as s:
        row = s.scalars(select(InboxEvent).where(InboxEvent.status == "processed")).first()
    assert client.post(f"/console/events/{row.id}/replay",
                       data={"csrf_token": csrf}).status_code == 409


def test_the_event_search_refuses_what_it_cannot_search(client):
    sign_in(client)
    resp = client.get("/console/events", query_string={"received_from": "soon"})
    assert resp.status_code == 400 and "received_from" in _text(resp)


# --- markup from a webhook is text ------------------------------------------------------------


HOSTILE = ['<script>alert(1)</script>', '"><img src=x onerror=alert(2)>']


def test_a_webhooks_markup_shows_as_text_on_every_page(client, container):
    made = samples.Scenario(key="console-xss", customer_name=HOSTILE[0] + HOSTILE[1],
                            customer_email=f"x{HOSTILE[1]}@example.com")
    for event_type in ("customer.subscription.created", "invoice.paid", "charge.succeeded"):
        event = samples.stripe_event(event_type, made)
        obj = event["data"]["object"]
        obj["description"] = HOSTILE[0]
        obj["metadata"] = {"note": HOSTILE[1]}
        send(client, MERCHANT, event)
    run_worker(container)
    sign_in(client)
    with container.sessions() as s:
        row = s.scalars(select(InboxEvent).where(InboxEvent.merchant == MERCHANT)).first()
    pages = [f"/console/accounts/{made.customer_id}", f"/console/events/{row.id}",
             "/console/events", f"/console/accounts?q={made.customer_id}x"]
    for path in pages:
        text = _text(client.get(path, follow_redirects=True))
        assert "<script>alert" not in text and "<img src=x" not in text, path
        assert not re.search(r"<[^>]*onerror", text), path
    account = _text(client.get(f"/console/accounts/{made.customer_id}"))
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in account  # the name, as text


# --- reconciliation ------------------------------------------------------------------------------


@responses.activate
def test_a_months_reconciliation_is_built_shown_and_downloaded(client, container):
    provider_apis_answered()
    csrf = sign_in(client)
    form = client.get("/console/reports")
    assert form.status_code == 200 and 'type="date"' in _text(form)
    assert 'name="source_stripe"' in _text(form) and 'name="source_paypal"' in _text(form)
    none = client.post("/console/reports", data={
        "csrf_token": csrf, "from": "2026-10-01", "to": "2026-11-01"})
    assert none.status_code == 400 and "at least one provider" in _text(none)
    started = client.post("/console/reports", data={
        "csrf_token": csrf, "from": "2026-10-01", "to": "2026-11-01", "source_stripe": "1"})
    assert started.status_code == 302
    location = started.headers["Location"]
    assert client.get(location).status_code == 202  # a worker has not built it yet
    run_worker(container)
    asked = {str(call.request.url).split("?")[0] for call in responses.calls}
    assert "https://api.stripe.com/v1/balance_transactions" in asked
    assert not [url for url in asked if "paypal" in url]  # PayPal was not picked
    page = client.get(location)
    assert page.status_code == 200, _text(page)
    text = _text(page)
    assert "Reconciliation report: theopenhost" in text and "Download CSV" in text
    assert "style-src 'unsafe-inline'" in page.headers["Content-Security-Policy"]
    csv = client.get(f"{location}/report.csv")
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert "attachment" in csv.headers["Content-Disposition"]
    bad = client.post("/console/reports", data={"csrf_token": csrf, "from": "2026-11-01",
                                                "to": "2026-10-01"})
    assert bad.status_code == 400


def test_the_console_is_part_of_the_app(container):
    rules = {r.rule for r in create_app(container=container).url_map.iter_rules()}
    assert "/console/reviews" in rules and "/console/sign-in" in rules


def test_a_report_rows_event_link_opens_the_event_after_signing_in(client, container):
    """The HTML report links each row to /console/events/by-id/<event id>: a person who is not
    signed in signs in first and lands on the event's page."""
    from reports.build import event_link
    from reports.html import event_href

    paid(client, container, "console-link", days_ago=1)
    with container.sessions() as s:
        row = s.scalars(select(InboxEvent).where(InboxEvent.merchant == MERCHANT)).first()
    href = event_href(event_link("http://localhost"), row.event_id)
    assert href is not None
    path = href.removeprefix("http://localhost")
    to_sign_in = client.get(path)
    assert to_sign_in.status_code == 302
    form = client.get(to_sign_in.headers["Location"])
    signed = client.post("/console/sign-in", data={
        "csrf_token": csrf_of(form), "reviewer": "kim", "token": "test-admin-theopenhost-003",
        "next": path})
    assert signed.headers["Location"] == path
    landed = client.get(path, follow_redirects=True)
    assert landed.status_code == 200 and row.event_id in _text(landed)
    assert landed.request.path == f"/console/events/{row.id}"


def test_an_account_id_with_a_slash_opens(client, container):
    """Account ids are the providers' (a PayPal payer may be known by an e-mail address):
    any character the ledger holds, a slash included, opens the account's page."""
    from ledger.models import Customer

    with container.sessions() as s, s.begin():
        s.add(Customer(merchant=MERCHANT, provider="paypal", provider_id="odd/payer@example.com",
                       email="odd/payer@example.com", name="Odd", version_at=datetime.now(UTC),
                       version_rank=0, version_event="WH-odd", livemode=False))
    sign_in(client)
    found = client.get("/console/accounts", query_string={"q": "odd/payer@example.com"})
    assert found.status_code == 302
    page = client.get(found.headers["Location"])
    assert page.status_code == 200 and "odd/payer@example.com" in _text(page)
