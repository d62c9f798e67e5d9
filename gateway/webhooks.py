"""Webhook endpoints: verify the raw bytes, record in the inbox, schedule, answer. Nothing else.

A view never runs business logic: once the event is on disk it is acknowledged. With the Redis
inbox that is its append to its partition's stream (``workers.intake``; Redis down: 503); with
the database inbox, its committed row (the database down: 503; Redis down after the commit: 200,
and the sweeper enqueues it later).

The route is served by a bare WSGI callable in front of Flask (``Webhooks``, installed by
``gateway.app``): every request to a ``/webhooks/<merchant>/<provider>`` path is answered here,
everything else goes on to Flask. Flask's request cycle (its request context, routing, hooks and
response object) cost about 40% of a delivery's CPU in the web process, for nothing the webhook
path uses. What Flask did for this route is done here, in the same shapes: the body limit (413),
the one error shape, 405 for another method, the log context cleared at the start, an
unexpected error answered 500 and logged (or raised, where Flask would propagate it). The path
is read as werkzeug's router reads it (UTF-8, leading slashes collapsed), so this callable takes
exactly the requests Flask's rule would match (a property test holds the two together); Flask's
URL map still holds the rule (``ROUTE``), so the routing table and the OpenAPI document name it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.datastructures import EnvironHeaders
from werkzeug.exceptions import (
    HTTPException,
    InternalServerError,
    MethodNotAllowed,
    RequestEntityTooLarge,
)
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_input_stream

from gateway.envelope import Envelope, parse_json, paypal_envelope, stripe_envelope
from gateway.ratelimit import source_of
from gateway.responses import error_body, http_error_body
from gateway.signatures.stripe import verify_stripe
from ledger.inbox import Stored, new_event_row, store_event
from ledger.models import InboxStatus, Provider
from service import metrics
from service.bootstrap import Container
from service.config import Merchant
from service.errors import InboxUnavailable, TransmissionReused, VerificationError
from service.logs import bind, start_request
from workers.dispatch import partition_of

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from flask import Flask

log = logging.getLogger(__name__)

ROUTE = "/webhooks/<merchant_name>/<provider>"  # as Flask's URL map names it
ENDPOINT = "webhooks.receive"
_PATH = re.compile(r"/webhooks/([^/]+)/([^/]+)\Z")  # the rule's default converters: no "/"

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


class Answer(NamedTuple):
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


def _error(status: int, code: str, message: str) -> Answer:
    return Answer(status, error_body(code, message))


class Webhooks:
    """The WSGI application in front of Flask's: webhook paths here, everything else to it."""

    def __init__(self, container: Container, flask_app: Flask) -> None:
        self.container = container
        self.flask_app = flask_app
        self.app = flask_app.wsgi_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse
                 ) -> Iterable[bytes]:
        route = route_of(environ.get("PATH_INFO", ""))
        if route is None:
            return self.app(environ, start_response)
        start_request()
        try:
            if environ.get("REQUEST_METHOD", "").upper() != "POST":
                answer = Answer(405, http_error_body(MethodNotAllowed()), (("Allow", "POST"),))
            else:
                answer = receive(self.container, environ, *route)
        except HTTPException as exc:  # the body limit (413), a client gone mid-body (400)
            answer = Answer(exc.code or 400, http_error_body(exc))
        except Exception:
            if _propagates(self.flask_app):
                raise
            log.exception("Exception on %s [%s]", environ.get("PATH_INFO"),
                          environ.get("REQUEST_METHOD"))
            answer = Answer(500, http_error_body(InternalServerError()))
        return _send(answer, start_response)


def route_of(path_info: str) -> tuple[str, str] | None:
    """The merchant and provider a WSGI ``PATH_INFO`` names, read as werkzeug's router reads
    it (the WSGI string decoded as UTF-8, leading slashes collapsed), or None when it is not a
    webhook path."""
    # A server's PATH_INFO is latin-1 by the WSGI spec; "replace" keeps a stray other
    # character from raising here, outside the route's error handling.
    path = "/" + path_info.encode("latin-1", "replace").decode("utf-8", "replace").lstrip("/")
    found = _PATH.match(path)
    return (found[1], found[2]) if found else None


def _propagates(app: Flask) -> bool:
    """Whether Flask would raise an unexpected error rather than answer 500 (its
    PROPAGATE_EXCEPTIONS, which defaults to testing or debug mode)."""
    configured = app.config["PROPAGATE_EXCEPTIONS"]
    return bool(app.testing or app.debug) if configured is None else bool(configured)


def _send(answer: Answer, start_response: StartResponse) -> list[bytes]:
    """``answer`` as Flask's ``jsonify`` writes it (compact, a newline at the end)."""
    data = json.dumps(answer.body, separators=(",", ":")).encode() + b"\n"
    reason = HTTP_STATUS_CODES.get(answer.status, "unknown").upper()  # as werkzeug's Response
    start_response(f"{answer.status} {reason}",
                   [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
                    *answer.headers])
    return [data]


def receive(container: Container, environ: WSGIEnvironment, merchant_name: str, provider: str
            ) -> Answer:
    merchant = container.settings.merchant(merchant_name)
    if merchant is None:
        return _error(404, "unknown_merchant", f"no merchant named {merchant_name!r}")
    if provider not in (Provider.STRIPE, Provider.PAYPAL):
        return _error(404, "unknown_provider", "provider must be 'stripe' or 'paypal'")
    bind(merchant=merchant.name, provider=provider)
    metrics.WEBHOOKS_RECEIVED.labels(provider, merchant.name).inc()
    source = source_of(environ.get("REMOTE_ADDR"))
    if wait := container.failure_limiter.blocked_for(source, merchant.name):
        metrics.WEBHOOKS_REJECTED.labels(provider, "too_many_failures").inc()
        # before verifying: guessing costs the guesser only
        return Answer(429, error_body("too_many_failures",
                                      "too many failed signature checks from this address; "
                                      f"retry after {wait} seconds"),
                      (("Retry-After", str(wait)),))
    raw = _body(environ, container.settings.body_limit)
    headers = EnvironHeaders(environ)
    try:
        envelope, livemode = _verify(container, merchant, Provider(provider), headers, raw)
        bind(event_id=envelope.event_id)
        metrics.WEBHOOKS_VERIFIED.labels(provider, merchant.name).inc()
        row = _inbox_row(container, merchant, Provider(provider), envelope, livemode, headers,
                         raw)
        return _store_and_enqueue(container, row, envelope)
    except VerificationError as exc:
        status = 503 if exc.code in _UNAVAILABLE else 400
        if status == 400:
            container.failure_limiter.record_failure(source, merchant.name)
        metrics.WEBHOOKS_REJECTED.labels(provider, exc.code).inc()
        log.info("webhook rejected merchant=%s provider=%s reason=%s", merchant.name, provider,
                 exc.code)
        return _error(status, exc.code, exc.message)


def _body(environ: WSGIEnvironment, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes: 413 for a longer one. werkzeug refuses a
    Content-Length over the limit; a body with none (chunked, where the server ends the stream)
    is read up to the limit, and one that goes on past it is refused too, not cut short."""
    raw = get_input_stream(environ, max_content_length=limit).read()
    if len(raw) >= limit and environ.get("wsgi.input_terminated") \
            and environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()
    return raw


def _verify(container: Container, merchant: Merchant, provider: Provider,
            headers: EnvironHeaders, raw: bytes) -> tuple[Envelope, bool]:
    """Verify the signature first, then read the envelope: nothing unverified is parsed."""
    if provider is Provider.STRIPE:
        if not merchant.stripe.webhook_secrets:
            raise VerificationError("not_configured", "merchant has no Stripe webhook secret")
        verify_stripe(raw, headers.get("Stripe-Signature"), merchant.stripe.webhook_secrets,
                      container.settings.stripe_tolerance)
        envelope = stripe_envelope(parse_json(raw))
        return envelope, bool(envelope.livemode)
    if not merchant.paypal.webhook_id:
        raise VerificationError("not_configured", "merchant has no PayPal webhook id")
    container.paypal_verifier(merchant).verify(dict(headers.items()), raw,
                                               merchant.paypal.webhook_id)
    envelope = paypal_envelope(parse_json(raw))
    return envelope, ".sandbox." not in headers.get("Paypal-Cert-Url", "")


def _store_and_enqueue(container: Container, row: dict[str, Any], envelope: Envelope) -> Answer:
    """Record the delivery (the Redis inbox's stream, or the inbox table) and schedule its
    drain; 200 only once it is on disk. An accepted delivery writes no log line (the metrics
    count it, the access line names it); a refused one does."""
    provider = row["provider"]
    record = _append if container.settings.inbox == "redis" else _store
    try:
        duplicate, status = record(container, row)
    except TransmissionReused as exc:
        raise VerificationError("transmission_reused", str(exc)) from exc
    except (SQLAlchemyError, RedisError, InboxUnavailable):
        metrics.WEBHOOKS_REJECTED.labels(provider, "storage_unavailable").inc()
        log.exception("inbox unavailable merchant=%s event=%s", row["merchant"],
                      envelope.event_id)
        return _error(503, "storage_unavailable", "the event could not be stored; retry later")
    if duplicate:
        metrics.WEBHOOKS_DUPLICATES.labels(provider).inc()
    elif envelope.out_of_range:
        metrics.EVENTS_OUT_OF_RANGE.labels(provider).inc()
        log.warning("webhook stored as ignored: %s", envelope.out_of_range)
    return Answer(200, {"received": True, "event_id": envelope.event_id,
                        "duplicate": duplicate, "status": status})


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
               livemode: bool, headers: EnvironHeaders, raw: bytes) -> dict[str, Any]:
    return new_event_row(
        merchant=merchant, provider=provider.value, envelope=envelope, livemode=livemode,
        raw=raw, headers={h: v for h in _KEPT_HEADERS if (v := headers.get(h)) is not None},
        partition=partition_of(merchant.name, envelope.object_ref, container.settings.partitions))


def _enqueue(container: Container, stored: Stored, event_id: str) -> None:
    """Best effort: the event is already safe in the inbox, and the sweeper covers a failure."""
    try:
        container.dispatcher.notify(stored.inbox_id, stored.partition)
    except RedisError:
        log.warning("enqueue failed, the sweeper will pick it up event=%s", event_id)


def install(container: Container, app: Flask) -> None:
    """Serve the webhook route in front of the Flask ``app``, with the rule in its URL map."""
    app.add_url_rule(ROUTE, ENDPOINT, methods=["POST"], provide_automatic_options=False)
    app.wsgi_app = Webhooks(container, app)  # type: ignore[method-assign]

