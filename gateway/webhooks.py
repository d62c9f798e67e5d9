"""Webhook endpoints: verify the raw bytes, record in the inbox, schedule, answer. Nothing else.

A view never runs business logic: once the event is on disk it is acknowledged. With the Redis
inbox that is its append to its partition's stream (``workers.intake``; Redis down: 503); with
the database inbox, its committed row (the database down: 503; Redis down after the commit: 200,
and the sweeper enqueues it later).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from gateway.envelope import Envelope, parse_json, paypal_envelope, stripe_envelope
from gateway.ratelimit import source_of, too_many_failures
from gateway.responses import error
from gateway.signatures.stripe import verify_stripe
from ledger.inbox import Stored, new_event_row, store_event
from ledger.models import InboxStatus, Provider
from service import metrics
from service.bootstrap import Container
from service.config import Merchant
from service.errors import InboxUnavailable, TransmissionReused, VerificationError
from service.logs import bind
from workers.dispatch import partition_of

log = logging.getLogger(__name__)
bp = Blueprint("webhooks", __name__)

# Headers worth keeping with the event: enough to re-verify or audit it, nothing secret.
_KEPT_HEADERS = (
    "Stripe-Signature",
    "Paypal-Transmission-Id",
    "Paypal-Transmission-Time",
    "Paypal-Transmission-Sig",
    "Paypal-Cert-Url",
    "Paypal-Auth-Algo",
    "Content-Type",
    "User-Agent",
)
# Verification failures that say "try again later", not "this is forged".
_UNAVAILABLE = {"cert_fetch_failed", "verification_unavailable"}


def _container() -> Container:
    container: Container = current_app.extensions["gateway"]
    return container


@bp.post("/webhooks/<merchant_name>/<provider>")
def receive(merchant_name: str, provider: str) -> tuple[Response, int]:
    container = _container()
    merchant = container.settings.merchant(merchant_name)
    if merchant is None:
        return error(404, "unknown_merchant", f"no merchant named {merchant_name!r}")
    if provider not in (Provider.STRIPE, Provider.PAYPAL):
        return error(404, "unknown_provider", "provider must be 'stripe' or 'paypal'")
    bind(merchant=merchant.name, provider=provider)
    metrics.WEBHOOKS_RECEIVED.labels(provider, merchant.name).inc()
    source = source_of(request.remote_addr)
    if wait := container.failure_limiter.blocked_for(source, merchant.name):
        metrics.WEBHOOKS_REJECTED.labels(provider, "too_many_failures").inc()
        return too_many_failures(wait)  # before verifying: guessing costs the guesser only
    raw = request.get_data(cache=False)
    try:
        envelope, livemode = _verify(container, merchant, Provider(provider), raw)
        bind(event_id=envelope.event_id)
        metrics.WEBHOOKS_VERIFIED.labels(provider, merchant.name).inc()
        return _store_and_enqueue(container, merchant, Provider(provider), envelope, livemode,
                                  raw)
    except VerificationError as exc:
        status = 503 if exc.code in _UNAVAILABLE else 400
        if status == 400:
            container.failure_limiter.record_failure(source, merchant.name)
        metrics.WEBHOOKS_REJECTED.labels(provider, exc.code).inc()
        log.info("webhook rejected merchant=%s provider=%s reason=%s", merchant.name, provider,
                 exc.code)
        return error(status, exc.code, exc.message)


def _verify(container: Container, merchant: Merchant, provider: Provider, raw: bytes
            ) -> tuple[Envelope, bool]:
    """Verify the signature first, then read the envelope: nothing unverified is parsed."""
    if provider is Provider.STRIPE:
        if not merchant.stripe.webhook_secrets:
            raise VerificationError("not_configured", "merchant has no Stripe webhook secret")
        verify_stripe(raw, request.headers.get("Stripe-Signature"),
                      merchant.stripe.webhook_secrets, container.settings.stripe_tolerance)
        envelope = stripe_envelope(parse_json(raw))
        return envelope, bool(envelope.livemode)
    if not merchant.paypal.webhook_id:
        raise VerificationError("not_configured", "merchant has no PayPal webhook id")
    headers = dict(request.headers.items())
    container.paypal_verifier(merchant).verify(headers, raw, merchant.paypal.webhook_id)
    envelope = paypal_envelope(parse_json(raw))
    cert_url = request.headers.get("Paypal-Cert-Url", "")
    return envelope, ".sandbox." not in cert_url


def _store_and_enqueue(container: Container, merchant: Merchant, provider: Provider,
                       envelope: Envelope, livemode: bool, raw: bytes) -> tuple[Response, int]:
    """Record the delivery (the Redis inbox's stream, or the inbox table) and schedule its
    drain; 200 only once it is on disk. An accepted delivery writes no log line (the metrics
    count it, the access line names it); a refused one does."""
    row = _inbox_row(container, merchant, provider, envelope, livemode, raw)
    record = _append if container.settings.inbox == "redis" else _store
    try:
        duplicate, status = record(container, row)
    except TransmissionReused as exc:
        raise VerificationError("transmission_reused", str(exc)) from exc
    except (SQLAlchemyError, RedisError, InboxUnavailable):
        metrics.WEBHOOKS_REJECTED.labels(provider.value, "storage_unavailable").inc()
        log.exception("inbox unavailable merchant=%s event=%s", merchant.name, envelope.event_id)
        return error(503, "storage_unavailable", "the event could not be stored; retry later")
    if duplicate:
        metrics.WEBHOOKS_DUPLICATES.labels(provider.value).inc()
    elif envelope.out_of_range:
        metrics.EVENTS_OUT_OF_RANGE.labels(provider.value).inc()
        log.warning("webhook stored as ignored: %s", envelope.out_of_range)
    body: dict[str, Any] = {"received": True, "event_id": envelope.event_id,
                            "duplicate": duplicate, "status": status}
    return jsonify(body), 200


def _append(container: Container, row: dict[str, Any]) -> tuple[bool, str]:
    """The Redis inbox: on disk once the script's append is fsync'd to Redis's AOF."""
    appended = container.intake.append(row)
    if appended.schedule:
        try:
            container.dispatcher.schedule(row["partition"])
        except RedisError:  # on disk already: the sweeper schedules the partition's drain
            log.warning("could not schedule a drain; the sweeper will event=%s",
                        row["event_id"])
    return appended.duplicate, appended.status


def _store(container: Container, row: dict[str, Any]) -> tuple[bool, str]:
    """The database inbox: on disk once the row is committed."""
    stored = store_event(container.engine, row)
    if stored.status == InboxStatus.PENDING:
        _enqueue(container, stored, row["event_id"])
    return stored.duplicate, stored.status


def _inbox_row(container: Container, merchant: Merchant, provider: Provider, envelope: Envelope,
               livemode: bool, raw: bytes) -> dict[str, Any]:
    return new_event_row(
        merchant=merchant, provider=provider.value, envelope=envelope, livemode=livemode,
        raw=raw, headers={h: request.headers[h] for h in _KEPT_HEADERS if h in request.headers},
        partition=partition_of(merchant.name, envelope.object_ref, container.settings.partitions))


def _enqueue(container: Container, stored: Stored, event_id: str) -> None:
    """Best effort: the event is already safe in the inbox, and the sweeper covers a failure."""
    try:
        container.dispatcher.notify(stored.inbox_id, stored.partition)
    except RedisError:
        log.warning("enqueue failed, the sweeper will pick it up event=%s", event_id)
