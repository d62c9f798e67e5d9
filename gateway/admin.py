"""The admin API (JSON, bearer token per merchant). Views translate HTTP to calls, nothing more."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request, stream_with_context
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import BadRequest

from adapters import ledger_credit
from gateway import events, idempotency
from gateway.auth import require_merchant
from gateway.envelope import parse_time
from gateway.openapi import document
from gateway.responses import error
from gateway.serialize import decision_json, request_json
from gateway.validation import InvalidBody, refuse_unknown, validate, whole_number
from ledger import audit
from ledger.locks import serialize
from ledger.models import (
    Action,
    Customer,
    Decision,
    InboxEvent,
    RequestStatus,
    SupportRequest,
    UsageReport,
)
from policy import CaseError, PolicyError, case_from_json, decision_to_json, evaluate
from reports.run import FORMATS, PROVIDERS, render
from service.bootstrap import Container
from workers import reports, reviews
from workers import requests as support_requests
from workers.actions import new_id
from workers.cases import payment_by_ref, payment_owners, subscription_by_ref, subscription_owners
from workers.decide import enqueue_actions_of

log = logging.getLogger(__name__)
bp = Blueprint("admin", __name__, url_prefix="/v1")


def _container() -> Container:
    container: Container = current_app.extensions["gateway"]
    return container


def _actor() -> str:
    """Who acts: the support agent named in X-Gateway-Actor, else the merchant's token."""
    named = request.headers.get("X-Gateway-Actor", "").strip()[:200]
    return named or f"merchant:{g.merchant.name}"


@bp.before_request
def _no_nul_in_ids() -> tuple[Response, int] | None:
    """An id with a NUL character is no id of ours (PostgreSQL would refuse to look it up)."""
    if "\x00" in request.path:
        return error(404, "not_found", "no such id")
    return None


@bp.errorhandler(InvalidBody)
def _invalid_body(exc: InvalidBody) -> tuple[Response, int]:
    return error(400, "invalid_request", exc.message, field=exc.field or "body")


class _NotJson(Exception):
    """The request body is not JSON at all (as opposed to JSON of the wrong shape)."""


@bp.errorhandler(_NotJson)
def _not_json(exc: _NotJson) -> tuple[Response, int]:
    return error(400, "invalid_json", str(exc), field="body")


def _json_body() -> Any:
    """The request body parsed as JSON, whatever its Content-Type says; ``400 invalid_json``
    when it is not JSON, so that a client is not sent looking for a missing field."""
    try:
        return request.get_json(force=True)
    except BadRequest:
        raise _NotJson("the body is not valid JSON; send a JSON object") from None


@bp.errorhandler(RecursionError)
def _too_deep(exc: RecursionError) -> tuple[Response, int]:
    """A JSON body nested past the interpreter's limit (``get_json`` catches only ValueError)."""
    return error(400, "invalid_request", "the body is nested too deeply", field="body")


@bp.errorhandler(reviews.ReviewError)
def _review_error(exc: reviews.ReviewError) -> tuple[Response, int]:
    return error(exc.status, "review_refused", exc.message, field=exc.field)


@bp.errorhandler(OperationalError)
def _storage_unavailable(exc: OperationalError) -> tuple[Response, int]:
    """The database did not answer in time (a web process waits only a few seconds): nothing
    was written, and the same request can be sent again (with its Idempotency-Key)."""
    log.warning("admin request could not reach the database: %s", exc.orig)
    answer, status = error(503, "storage_unavailable", "the ledger is busy or unreachable; "
                           "nothing was changed, send the request again")
    answer.headers["Retry-After"] = "2"
    return answer, status


@bp.errorhandler(idempotency.KeyReused)
def _key_reused(exc: idempotency.KeyReused) -> tuple[Response, int]:
    return error(422, "idempotency_key_reused", str(exc), field=idempotency.HEADER)


class _Conflict(Exception):
    """A request that would repeat one still open: ``409`` naming it."""

    def __init__(self, field: str, message: str, existing: str) -> None:
        super().__init__(message)
        self.field, self.message, self.existing = field, message, existing


@bp.errorhandler(_Conflict)
def _conflict(exc: _Conflict) -> tuple[Response, int]:
    return error(409, "duplicate_request", exc.message, field=exc.field, existing=exc.existing)


def _idempotent(work: idempotency.Work) -> tuple[Response, int]:
    """Answer with ``work``'s result, done once per Idempotency-Key (see gateway.idempotency)."""
    claim = idempotency.claim_of(request, g.merchant.name)
    answer = idempotency.run(_container().sessions, claim, work)
    g.replayed = answer.replayed
    response = jsonify(answer.body)
    if answer.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response, answer.status


@bp.get("/openapi.json")
def openapi() -> Response:
    """The admin API's OpenAPI document (public: it holds no data)."""
    return jsonify(document())


@bp.post("/decisions/preview")
@require_merchant
def preview_decision() -> tuple[Response, int]:
    """Evaluate a Case under the merchant's pack, without recording or executing anything."""
    body = _json_body()
    if not isinstance(body, dict) or not isinstance(body.get("case"), dict):
        return error(400, "invalid_request", "body must be {\"case\": {...}, \"at\": ISO time?}",
                     field="case")
    if extra := sorted(set(body) - {"case", "at"}):
        return error(400, "invalid_request", "body takes only \"case\" and \"at\"",
                     field=extra[0])
    at = _at(body.get("at"))
    if at is None:
        return error(400, "invalid_request", "'at' must be an ISO 8601 time", field="at")
    try:
        # A Case that names no calendar is read on the merchant's, as the workers' Cases are.
        case = case_from_json({"time_zone": g.merchant.time_zone} | body["case"])
        pack = current_app.extensions["gateway"].policy_pack(g.merchant.policy_pack)
        decision = evaluate(pack, case, at)
    except CaseError as exc:
        field = f"case.{exc.field}" if exc.field else "case"
        return error(400, "invalid_case", exc.message, field=field)
    except PolicyError as exc:
        return error(400, "invalid_case", str(exc), field="case")
    answer = decision_to_json(decision)
    return _idempotent(lambda session: (200, answer))


def _at(value: Any) -> datetime | None:
    if value is None:
        return datetime.now(UTC)
    return parse_time(value) if isinstance(value, str) else None


@bp.post("/refund-requests")
@require_merchant
def file_refund_request() -> tuple[Response, int]:
    """Store a customer's refund claim; a worker builds the Case, decides and executes it."""
    body = validate("RefundRequest", _json_body())
    return _file("refund", [(body, body["payment"])])


@bp.post("/cancellations")
@require_merchant
def file_cancellation() -> tuple[Response, int]:
    """Store a cancellation; with ``money_back_payment`` a refund claim is filed beside it."""
    body = validate("CancellationRequest", _json_body())
    filed: list[tuple[dict[str, Any], str | None]] = [(body, None)]
    if body.get("money_back_payment"):
        claim = {k: v for k, v in body.items()
                 if k in ("account", "reason", "reason_code", "identity", "received_at",
                          "product_category")}
        filed.append(({**claim, "payment": body["money_back_payment"]},
                      body["money_back_payment"]))
    return _file("cancellation", filed)


@bp.post("/uptime-claims")
@require_merchant
def file_uptime_claim() -> tuple[Response, int]:
    """Store an uptime claim; the outage record and the schedule decide the service credit."""
    body = validate("UptimeClaim", _json_body())
    return _file("uptime_claim", [(body, None)])


def _file(kind: str, bodies: list[tuple[dict[str, Any], str | None]]) -> tuple[Response, int]:
    """Store requests (the first of ``kind``, any further ones refund claims), answer ``202``
    with the first (and the id of a second), and enqueue them."""
    now = datetime.now(UTC)
    rows = []
    for i, (body, payment_ref) in enumerate(bodies):
        if "product_category" not in body and g.merchant.default_product_category:
            body["product_category"] = g.merchant.default_product_category
        rows.append(SupportRequest(id=new_id("req"), merchant=g.merchant.name,
                                   kind=kind if i == 0 else "refund",
                                   account_ref=body["account"], payment_ref=payment_ref,
                                   body=body, filed_by=_actor(), created_at=now,
                                   status=RequestStatus.RECEIVED))

    def work(session: Any) -> tuple[int, dict[str, Any]]:
        for row in rows:
            _check_claim(session, row, "payment" if kind == "refund" else "money_back_payment")
            session.add(row)
            audit.record(session, merchant=row.merchant, actor=row.filed_by, at=now,
                         action="request.filed", subject=row.id, kind=row.kind)
        answer = request_json(rows[0], None)
        if kind == "cancellation":
            answer["money_back_request"] = rows[1].id if len(rows) > 1 else None
        return 202, answer

    response = _idempotent(work)
    if not g.replayed:
        _enqueue(rows)
    return response


def _check_claim(session: Any, row: SupportRequest, field: str) -> None:
    """Refuse, before anything is stored, a claim on another account's payment or
    subscription (when the ledger knows whose it is) and a second open refund request for one
    payment (``409`` naming the first: decided once, whoever asks how often)."""
    merchant, account = row.merchant, row.account_ref
    subscription_ref = row.body.get("subscription")
    if row.kind != "refund" and subscription_ref:
        subscription = subscription_by_ref(session, merchant, subscription_ref)
        if subscription is not None and account not in subscription_owners(subscription):
            raise InvalidBody("subscription", f"subscription {subscription_ref} belongs to "
                              f"{subscription.customer_ref}, not to {account}")
    if row.kind != "refund" or row.payment_ref is None:
        return
    payment = payment_by_ref(session, merchant, row.payment_ref)
    owners = payment_owners(session, payment) if payment is not None else set()
    if owners and account not in owners:
        raise InvalidBody(field, f"payment {row.payment_ref} belongs to "
                          f"{', '.join(sorted(owners))}, not to {account}")
    serialize(session, "refund-request", merchant, row.payment_ref)
    existing = session.scalars(select(SupportRequest.id).where(
        SupportRequest.merchant == merchant, SupportRequest.payment_ref == row.payment_ref,
        SupportRequest.kind == "refund",
        SupportRequest.status.in_((RequestStatus.RECEIVED, RequestStatus.DECIDED)))
        .order_by(SupportRequest.created_at)).first()
    if existing is not None:
        raise _Conflict(field, f"payment {row.payment_ref} already has refund request "
                        f"{existing}; see GET /v1/refund-requests/{existing}", existing)


def _enqueue(rows: list[SupportRequest]) -> None:
    container = _container()
    for row in rows:
        try:
            support_requests.enqueue(container, row.id)
        except RedisError:  # stored: the sweeper hands it to a worker later
            log.warning("could not enqueue request %s; the sweeper will", row.id)


@bp.get("/refund-requests/<request_id>")
@bp.get("/cancellations/<request_id>")
@bp.get("/uptime-claims/<request_id>")
@require_merchant
def show_request(request_id: str) -> tuple[Response, int]:
    """The request, and once decided its Decision with cited reasons and its actions' state."""
    with _container().sessions() as session:
        row = session.get(SupportRequest, request_id)
        if row is None or row.merchant != g.merchant.name:
            return error(404, "not_found", f"no request {request_id}")
        decision = session.get(Decision, row.decision_id) if row.decision_id else None
        return jsonify(request_json(row, _decision(session, decision))), 200


@bp.get("/decisions/<decision_id>")
@require_merchant
def show_decision(decision_id: str) -> tuple[Response, int]:
    with _container().sessions() as session:
        decision = session.get(Decision, decision_id)
        if decision is None or decision.merchant != g.merchant.name:
            return error(404, "not_found", f"no decision {decision_id}")
        return jsonify(_decision(session, decision)), 200


def _decision(session: Any, decision: Decision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    actions = list(session.scalars(select(Action).where(Action.decision_id == decision.id)
                                   .order_by(Action.created_at)))
    return decision_json(decision, actions)


@bp.post("/usage")
@require_merchant
def report_usage() -> tuple[Response, int]:
    """The merchant reports an account's usage (bandwidth, sessions, last use)."""
    body = validate("UsageReport", _json_body())
    now = datetime.now(UTC)
    merchant, actor = g.merchant.name, _actor()

    def work(session: Any) -> tuple[int, dict[str, Any]]:
        session.add(UsageReport(merchant=merchant, account_ref=body["account"],
                                bandwidth_bytes=body["bandwidth_bytes"],
                                sessions=body["sessions"],
                                last_used_at=parse_time(body.get("last_used_at")),
                                reported_at=now))
        audit.record(session, merchant=merchant, actor=actor, at=now,
                     action="usage.reported", subject=body["account"],
                     bandwidth_bytes=body["bandwidth_bytes"], sessions=body["sessions"])
        return 201, {"recorded": True, "account": body["account"]}

    return _idempotent(work)


@bp.get("/reviews")
@require_merchant
def list_reviews() -> tuple[Response, int]:
    """Decisions waiting for a person, oldest first, a page at a time (``has_more``, then
    ``?starting_after=`` the last decision's id)."""
    limit, after_id = _review_page(request.args)
    with _container().sessions() as session:
        after = None
        if after_id is not None:
            after = session.get(Decision, after_id)
            if after is None or after.merchant != g.merchant.name:
                raise InvalidBody("starting_after", f"no decision {after_id}")
        found = reviews.pending(session, g.merchant.name, limit + 1, after)
        return jsonify({"reviews": [_decision(session, d) for d in found[:limit]],
                        "has_more": len(found) > limit}), 200


REVIEW_PAGE, REVIEW_PAGE_MAX = 100, 200


def _review_page(args: Mapping[str, str]) -> tuple[int, str | None]:
    """``limit`` (1 to 200, default 100) and ``starting_after`` (a decision id), checked."""
    refuse_unknown(args, ("limit", "starting_after"))
    text = args.get("limit", "")
    limit = whole_number("limit", text, REVIEW_PAGE_MAX) if text else REVIEW_PAGE
    after = args.get("starting_after") or None
    if after is not None and not (len(after) <= 64 and after.isascii() and after.isprintable()):
        raise InvalidBody("starting_after", "must be a decision id")
    return limit, after


@bp.post("/reviews/<decision_id>")
@require_merchant
def answer_review(decision_id: str) -> tuple[Response, int]:
    """Approve (with a refund and/or credit, carried out at once) or deny a decision."""
    body = validate("ReviewAnswer", _json_body())
    merchant = g.merchant

    def work(session: Any) -> tuple[int, dict[str, Any]]:
        status = reviews.answer_in(session, merchant, decision_id, body,
                                   datetime.now(UTC))
        session.flush()
        return 200, {"status": status,
                     "decision": _decision(session, session.get(Decision, decision_id))}

    response = _idempotent(work)
    if not g.replayed:
        enqueue_actions_of(_container(), decision_id)
    return response


@bp.get("/events/<event_id>")
@require_merchant
def show_event(event_id: str) -> tuple[Response, int]:
    """An inbox event as received: what a report's row links to."""
    with _container().sessions() as session:
        rows = list(session.scalars(select(InboxEvent).where(
            InboxEvent.merchant == g.merchant.name, InboxEvent.event_id == event_id)))
    if not rows:
        return error(404, "not_found", f"no event {event_id}")
    return jsonify({"events": [_event_json(row) for row in rows]}), 200


@bp.get("/events")
@require_merchant
def search_events() -> tuple[Response, int]:
    """The merchant's inbox, newest first, filtered by status, provider, type and the time it
    was received; a page at a time (``has_more``, then ``?starting_after=`` the last ``id``)."""
    rows, more = events.search(_container(), g.merchant.name, events.parse_search(request.args))
    return jsonify({"events": [events.summary(row) for row in rows], "has_more": more}), 200


@bp.post("/events/<event_id>/replay")
@require_merchant
def replay_event(event_id: str) -> tuple[Response, int]:
    """Hand an event that failed (dead, or waiting for a retry) to the workers again now."""
    with _container().sessions() as session:
        statuses = list(session.scalars(select(InboxEvent.status).where(
            InboxEvent.merchant == g.merchant.name, InboxEvent.event_id == event_id)))
    if not statuses:
        return error(404, "not_found", f"no event {event_id}")
    if all(status in events.SETTLED for status in statuses):
        return error(409, "already_applied", f"event {event_id} is {statuses[0]}: only a "
                     f"dead, retrying or pending event is replayed", field="event_id")
    return _replayed([event_id])


@bp.post("/events/replay")
@require_merchant
def replay_dead_events() -> tuple[Response, int]:
    """Hand every dead event of the merchant to the workers again (``{"status": "dead"}``)."""
    validate("ReplayRequest", _json_body())
    return _replayed(None)


def _replayed(event_ids: list[str] | None) -> tuple[Response, int]:
    try:
        rows = events.replay(_container(), g.merchant.name, _actor(), event_ids)
    except RedisError:
        return error(503, "queue_unavailable", "the queue cannot be reached; the events are "
                     "pending and the sweeper hands them out when it can")
    return jsonify({"replayed": len(rows), "events": [events.summary(r) for r in rows]}), 202


def _event_json(row: InboxEvent) -> dict[str, Any]:
    return {"event_id": row.event_id, "provider": row.provider, "type": row.event_type,
            "status": row.status, "status_reason": row.status_reason,
            "received_at": row.received_at.isoformat(), "deliveries": row.deliveries,
            "attempts": row.attempts, "last_error": row.last_error,
            "payload": json.loads(row.raw_body)}


@bp.get("/accounts/<account>/credit")
@require_merchant
def show_credit(account: str) -> tuple[Response, int]:
    """An account's credit, entry by entry, and its balances (003 §1.8: used, never paid out)."""
    merchant = g.merchant.name
    with _container().sessions() as session:
        credit = ledger_credit.statement(session, merchant, account)
        known = credit.entries or session.scalars(select(Customer.id).where(
            Customer.merchant == merchant, Customer.provider_id == account)).first()
    if not known:
        return error(404, "not_found", "no such account")
    entries, counting = credit.entries, credit.counting
    return jsonify({"account": account, "balances": credit.balances, "entries": [
        {"id": e.id, "kind": ledger_credit.kind(e),
         "amount": {"amount": e.amount, "currency": e.currency}, "held_by": e.held_by,
         "reason": e.reason, "clause": e.clause, "decision": e.decision_id,
         "action": e.action_id, "applies_to": e.applies_to, "applied_to": e.applied_to,
         "counts": e.id in counting, "created_at": e.created_at.isoformat()}
        for e in entries]}), 200


@bp.post("/reports/reconciliation")
@require_merchant
def start_reconciliation() -> tuple[Response, int]:
    """``{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}``: a worker reads the providers' records
    for the period and builds the report; ``202`` with its location."""
    body = validate("ReconciliationRequest", _json_body())
    start, end = _day(body, "from"), _day(body, "to")
    if end <= start:
        return error(400, "invalid_request", "to must be after from", field="to")
    report_id = new_id("rpt")
    location = f"/v1/reports/reconciliation/{report_id}"
    response = _idempotent(lambda session: (202, {"id": report_id, "status": "queued",
                                                  "location": location}))
    if not g.replayed:
        try:
            reports.start(_container(), report_id, g.merchant.name, start, end,
                          body.get("sources") or PROVIDERS)
        except RedisError:
            return error(503, "queue_unavailable", "the report could not be queued; retry")
    response[0].headers["Location"] = response[0].get_json()["location"]
    return response


def _day(body: dict[str, Any], field: str) -> date:
    try:
        return date.fromisoformat(body[field])
    except ValueError:
        raise InvalidBody(field, f"{body[field]!r} is not a date") from None


@bp.get("/reports/reconciliation/<report_id>")
@require_merchant
def show_reconciliation(report_id: str) -> Response | tuple[Response, int]:
    """The report once ready (?format=json|csv|html); ``202`` while it is being built."""
    fmt = request.args.get("format", "json")
    if fmt not in FORMATS:
        return error(400, "invalid_request", f"format must be one of {FORMATS}", field="format")
    try:
        job = reports.find(_container(), report_id, g.merchant.name)
    except RedisError:
        return error(503, "queue_unavailable", "reports cannot be read right now; retry")
    if job is None:
        return error(404, "not_found", f"no report {report_id} (reports are kept a day)")
    state = reports.state(job)
    if state == "failed":
        return error(502, "report_failed", reports.failure(job), field="provider")
    if state != "ready":
        answer = jsonify({"id": report_id, "status": state})
        answer.headers["Retry-After"] = "2"
        return answer, 202
    report = job.return_value()
    if report is None:  # the result expired since the status was read
        return error(404, "not_found", f"no report {report_id} (reports are kept a day)")
    mimetype = {"json": "application/json", "csv": "text/csv", "html": "text/html"}[fmt]
    return Response(stream_with_context(render(report, fmt)),
                    mimetype=f"{mimetype}; charset=utf-8")
