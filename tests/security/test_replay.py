"""Replays of a validly signed Stripe event: refused once stale, harmless duplicates before."""

from __future__ import annotations

import time

from sqlalchemy import select

from ledger.models import InboxEvent
from sandbox import samples
from service.bootstrap import Container
from tests.support import stripe as sig
from tests.support.delivery import drain_everything, settle
from tests.support.ledger import snapshot


def _rows(container: Container) -> list[InboxEvent]:
    settle(container)
    with container.sessions() as s:
        return list(s.scalars(select(InboxEvent)))


def test_a_signed_event_older_than_the_tolerance_is_refused_and_not_stored(client, container,
                                                                            settings):
    """Signed one second past ``stripe_tolerance``: 400 stale_timestamp, at every secret."""
    raw = sig.body_of(samples.stripe_event("charge.succeeded", samples.Scenario(key="old")))
    old = int(time.time()) - settings.stripe_tolerance - 1
    for merchant, secret in [("theopenhost", sig.SECRET),
                             ("oneclick", "whsec_test_oneclick_previous")]:
        resp = sig.post(client, raw, merchant=merchant, secret=secret, timestamp=old)
        assert resp.status_code == 400 and resp.json["error"]["code"] == "stale_timestamp"
    assert _rows(container) == []


def test_a_replay_inside_the_tolerance_is_a_duplicate_and_leaves_the_ledger_as_it_was(
        client, container, settings):
    """The same bytes resent (same or fresh signature): 200 duplicate, one row, same ledger."""
    scenario = samples.Scenario(key="replay")
    events = [sig.body_of(samples.stripe_event(t, scenario)) for t in
              ("customer.subscription.created", "invoice.paid", "charge.succeeded")]
    first = int(time.time()) - settings.stripe_tolerance // 2
    headers = [sig.signature(raw, timestamp=first) for raw in events]
    for raw, header in zip(events, headers, strict=True):
        assert sig.post(client, raw, header=header).json["duplicate"] is False
    drain_everything(container)
    with container.sessions() as s:
        once = snapshot(s)
    assert once["payments"] and once["subscriptions"]

    for raw, header in zip(events, headers, strict=True):
        for again in (header, sig.signature(raw)):  # captured header, then a fresh one
            resp = sig.post(client, raw, header=again)
            assert resp.status_code == 200 and resp.json["duplicate"] is True
    drain_everything(container)
    with container.sessions() as s:
        assert snapshot(s) == once
    assert sorted(r.deliveries for r in _rows(container)) == [3, 3, 3]
