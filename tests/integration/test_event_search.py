"""The inbox through the admin API: search by status, provider, type and time, a page at a
time, and replay of a failed event or of every dead one; each merchant sees only its own."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import AuditEntry, InboxEvent, InboxStatus
from sandbox import samples
from service.bootstrap import Container
from tests.support.claims import headers, send
from tests.support.delivery import dead_event, run_worker

MERCHANT = "theopenhost"  # the merchant PayPal's test deliveries are addressed to


@pytest.fixture
def inbox(client: FlaskClient, container: Container) -> dict[str, Any]:
    """Three Stripe events applied, one for another merchant, and one PayPal event dead."""
    made = samples.Scenario(key="search")
    for event_type in ("customer.subscription.created", "invoice.paid", "charge.succeeded"):
        send(client, MERCHANT, samples.stripe_event(event_type, made))
    send(client, "cloudbehind", samples.stripe_event(
        "charge.succeeded", samples.Scenario(key="search-other")))
    run_worker(container)
    return {"dead": dead_event(client, container, key="search-dead"), "scenario": made}


def _search(client: FlaskClient, merchant: str = MERCHANT, **query: Any) -> Any:
    resp = client.get("/v1/events", query_string=query, headers=headers(merchant))
    assert resp.status_code == 200, resp.json
    return resp.json


def test_the_search_filters_by_status_provider_and_type(client, inbox):
    dead = _search(client, status="dead")["events"]
    assert [e["event_id"] for e in dead] == [inbox["dead"].event_id]
    assert "has no amount" in dead[0]["last_error"] and dead[0]["attempts"] >= 1
    assert "payload" not in dead[0] and "headers" not in dead[0]
    stripe = _search(client, provider="stripe")["events"]
    assert sorted(e["type"] for e in stripe) == [
        "charge.succeeded", "customer.subscription.created", "invoice.paid"]
    assert {e["status"] for e in stripe} == {"processed"}
    paid = _search(client, type="invoice.paid", status="processed")["events"]
    assert [e["type"] for e in paid] == ["invoice.paid"]
    assert _search(client, provider="paypal", status="processed")["events"] == []


def test_the_search_shows_only_the_merchants_own_events(client, inbox):
    mine = {e["event_id"] for e in _search(client)["events"]}
    theirs = {e["event_id"] for e in _search(client, merchant="cloudbehind")["events"]}
    assert len(mine) == 4 and len(theirs) == 1 and not mine & theirs
    other = theirs.pop()
    assert client.get(f"/v1/events/{other}", headers=headers(MERCHANT)).status_code == 404
    resp = client.post(f"/v1/events/{inbox['dead'].event_id}/replay",
                       headers=headers("cloudbehind"))
    assert resp.status_code == 404


def test_the_search_pages_newest_first_without_gaps_or_repeats(client, inbox):
    everything = [e["id"] for e in _search(client)["events"]]
    assert everything == sorted(everything, reverse=True) and len(everything) == 4
    seen: list[int] = []
    page = _search(client, limit=3)
    while True:
        seen += [e["id"] for e in page["events"]]
        if not page["has_more"]:
            break
        page = _search(client, limit=3, starting_after=seen[-1])
    assert seen == everything


def test_the_search_by_time_received(client, inbox, container):
    with container.sessions() as s:
        times = sorted(s.scalars(select(InboxEvent.received_at).where(
            InboxEvent.merchant == MERCHANT)))
    first, last = times[0], times[-1]
    assert len(_search(client, received_from=first.isoformat())["events"]) == 4
    assert _search(client, received_from="2099-01-01")["events"] == []
    assert _search(client, received_to=first.isoformat())["events"] == []  # exclusive
    assert len(_search(client, received_from="2020-01-01",
                       received_to=last.isoformat())["events"]) == len(
        [t for t in times if t < last])


@pytest.mark.parametrize(("query", "field"), [
    ({"status": "lost"}, "status"), ({"provider": "adyen"}, "provider"),
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"limit": "-1"}, "limit"), ({"starting_after": "1e9"}, "starting_after"),
    ({"received_from": "yesterday"}, "received_from"),
    ({"received_to": "1900-01-01"}, "received_to"), ({"type": "x" * 129}, "type"),
    ({"sort": "asc"}, "sort"),
])
def test_a_search_the_gateway_cannot_answer_is_refused_by_name(client, query, field):
    resp = client.get("/v1/events", query_string=query, headers=headers(MERCHANT))
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == "invalid_request"
    assert resp.json["error"]["field"] == field


def test_a_dead_event_replayed_goes_back_to_the_workers(client, inbox, container):
    dead = inbox["dead"]
    resp = client.post(f"/v1/events/{dead.event_id}/replay",
                       headers=headers(MERCHANT, **{"X-Gateway-Actor": "sam@support"}))
    assert resp.status_code == 202, resp.json
    assert resp.json["replayed"] == 1
    assert [(e["event_id"], e["status"]) for e in resp.json["events"]] == [
        (dead.event_id, "pending")]
    assert container.redis.lrange(f"gateway:inbox:{dead.partition}", 0, -1) == [
        str(dead.id).encode()]
    with container.sessions() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "event.replayed")).one()
    assert (entry.actor, entry.subject, entry.merchant) == ("sam@support", dead.event_id,
                                                            MERCHANT)


def test_an_event_already_applied_is_not_replayed(client, inbox, container):
    processed = _search(client, status="processed")["events"][0]
    resp = client.post(f"/v1/events/{processed['event_id']}/replay", headers=headers(MERCHANT))
    assert resp.status_code == 409 and resp.json["error"]["code"] == "already_applied"
    with container.sessions() as s:
        assert s.get(InboxEvent, processed["id"]).status == InboxStatus.PROCESSED
    unknown = client.post("/v1/events/evt_not_here/replay", headers=headers(MERCHANT))
    assert unknown.status_code == 404


def test_every_dead_event_is_replayed_at_once_and_only_the_merchants(client, inbox, container):
    other = client.post("/v1/events/replay", json={"status": "dead"},
                        headers=headers("cloudbehind"))
    assert other.status_code == 202 and other.json["replayed"] == 0
    assert _search(client, status="dead")["events"][0]["event_id"] == inbox["dead"].event_id
    resp = client.post("/v1/events/replay", json={"status": "dead"}, headers=headers(MERCHANT))
    assert resp.status_code == 202, resp.json
    assert [e["event_id"] for e in resp.json["events"]] == [inbox["dead"].event_id]
    again = client.post("/v1/events/replay", json={"status": "dead"}, headers=headers(MERCHANT))
    assert again.status_code == 202 and again.json["replayed"] == 0  # none is dead now
    refused = client.post("/v1/events/replay", json={"status": "processed"},
                          headers=headers(MERCHANT))
    assert refused.status_code == 400 and refused.json["error"]["field"] == "status"
    assert client.post("/v1/events/replay", json={},
                       headers=headers(MERCHANT)).status_code == 400
