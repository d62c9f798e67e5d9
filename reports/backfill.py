"""Missed events: what a provider says it sent in a period that the inbox never received, and
storing those events in the inbox exactly as their webhook would have.

The providers' event listings carry each event's full JSON (Stripe ``GET /v1/events``, PayPal
``GET /v1/notifications/webhooks-events``), so a backfill needs no second request per event.
Both listings and the inbox lookups go a chunk at a time: memory stays bounded for any period.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any
from urllib.parse import urlsplit

from redis.exceptions import RedisError
from sqlalchemy import select

from adapters.paypal_reports import PayPalReports
from adapters.stripe_reports import StripeReports
from gateway.envelope import Envelope, parse_time, paypal_envelope, stripe_envelope
from ledger.inbox import new_event_row, store_event
from ledger.models import InboxEvent, InboxStatus, Provider
from service.bootstrap import Container
from service.config import Merchant
from service.errors import UnknownMerchant
from workers.dispatch import partition_of

log = logging.getLogger(__name__)

CHUNK = 500  # events looked up in the inbox per query
BACKFILL_HEADERS = {"X-Gateway-Backfill": "api"}
_PAYPAL_LIVE_HOSTS = frozenset({"api.paypal.com", "api-m.paypal.com"})


def missed_events(container: Container, merchant: Merchant | str, provider: str,
                  start: datetime, end: datetime) -> Iterator[dict[str, Any]]:
    """``{"provider", "event_id", "event_type", "created_at"}`` of each event the provider lists
    in [start, end) that the inbox does not hold."""
    for summary, _event in _missed(container, _merchant(container, merchant),
                                   Provider(provider), start, end):
        yield summary


def backfill(container: Container, merchant: Merchant | str, provider: str,
             start: datetime, end: datetime) -> int:
    """Store every missed event of [start, end) in the inbox and hand it to the workers;
    returns how many were stored. A second run stores nothing: the inbox is unique on
    merchant, provider and event id."""
    found = _merchant(container, merchant)
    kind = Provider(provider)
    stored = 0
    for _summary, event in _missed(container, found, kind, start, end):
        # Authentic without a signature: the event came over TLS from the provider's own API
        # host, in answer to a request made with this merchant's secret credentials.
        result = store_event(container.engine, _inbox_row(container, found, kind, event))
        if result.duplicate:
            continue  # its webhook arrived while we were listing
        stored += 1
        if result.status == InboxStatus.PENDING:
            _enqueue(container, result.inbox_id, result.partition, event)
    log.info("backfill merchant=%s provider=%s stored=%d", found.name, kind.value, stored)
    return stored


def _missed(container: Container, merchant: Merchant, provider: Provider, start: datetime,
            end: datetime) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    listed = (e for e in _listing(merchant, provider, start, end)
              if start <= _summary(provider, e)["created_at"] < end)
    while chunk := list(islice(listed, CHUNK)):
        known = _known_ids(container, merchant.name, provider, [str(e["id"]) for e in chunk])
        for event in chunk:
            if str(event["id"]) not in known:
                yield _summary(provider, event), event


def _listing(merchant: Merchant, provider: Provider, start: datetime, end: datetime
             ) -> Iterator[dict[str, Any]]:
    if provider is Provider.STRIPE:
        return StripeReports(merchant.stripe).events(start, end)
    return PayPalReports(merchant.paypal).webhook_events(start, end)


def _known_ids(container: Container, merchant: str, provider: Provider, ids: list[str]
               ) -> set[str]:
    """The ids the inbox holds: in its table, or received into the Redis inbox and not drained
    yet (its dedupe key says so; a Redis that does not answer hides only those)."""
    query = (select(InboxEvent.event_id)
             .where(InboxEvent.merchant == merchant, InboxEvent.provider == provider.value)
             .where(InboxEvent.event_id.in_(ids)))
    with container.sessions() as session:
        known = set(session.scalars(query))
    try:
        known |= container.intake.seen(merchant, provider.value, ids)
    except RedisError:
        log.warning("Redis did not answer: events it holds undrained may be stored again "
                    "(harmless: the inbox counts them as deliveries)")
    return known


def _summary(provider: Provider, event: dict[str, Any]) -> dict[str, Any]:
    if provider is Provider.STRIPE:
        event_type = event.get("type")
        created = datetime.fromtimestamp(int(event["created"]), UTC)
    else:
        event_type = event.get("event_type")
        created = parse_time(event.get("create_time")) or datetime.min.replace(tzinfo=UTC)
    return {"provider": provider.value, "event_id": str(event["id"]),
            "event_type": str(event_type), "created_at": created}


def _inbox_row(container: Container, merchant: Merchant, provider: Provider,
               event: dict[str, Any]) -> dict[str, Any]:
    """The row ``gateway.webhooks`` would have stored for this event's delivery."""
    raw = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    envelope, livemode = _envelope(merchant, provider, event)
    return new_event_row(
        merchant=merchant, provider=provider.value, envelope=envelope, livemode=livemode,
        raw=raw, headers=dict(BACKFILL_HEADERS),
        partition=partition_of(merchant.name, envelope.object_ref, container.settings.partitions))

def _envelope(merchant: Merchant, provider: Provider, event: dict[str, Any]
              ) -> tuple[Envelope, bool]:
    if provider is Provider.STRIPE:
        envelope = stripe_envelope(event)
        return envelope, bool(envelope.livemode)
    # PayPal events do not say; the host they came from does (as the cert URL does for webhooks)
    host = urlsplit(merchant.paypal.api_base).hostname or ""
    return paypal_envelope(event), host in _PAYPAL_LIVE_HOSTS


def _enqueue(container: Container, inbox_id: int, partition: int, event: dict[str, Any]) -> None:
    """Best effort, as for a webhook: the event is safe in the inbox and the sweeper covers it."""
    try:
        container.dispatcher.notify(inbox_id, partition)
    except RedisError:
        log.warning("enqueue failed, the sweeper will pick it up event=%s", event.get("id"))


def _merchant(container: Container, merchant: Merchant | str) -> Merchant:
    if isinstance(merchant, Merchant):
        return merchant
    found = container.settings.merchant(merchant)
    if found is None:
        raise UnknownMerchant(merchant)
    return found
