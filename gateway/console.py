"""The operations console: server-rendered pages under ``/console`` for support and finance.

A thin web tier like the admin API, and on the same paths: reviews are answered through
``workers.reviews``, events searched and replayed through ``gateway.events``, reports built by
``workers.reports``. Signing in takes the merchant's admin token (which picks the merchant, as
the API's bearer token does) and the reviewer's name, which every change made from the console
records as its actor. The session lives in Redis behind a random cookie (``HttpOnly``,
``SameSite=Lax``, ``Secure`` for a live merchant); every form carries the session's CSRF token.
Templates are autoescaped Jinja2; no page needs JavaScript (a page waiting for a worker reloads
itself with a ``<meta http-equiv="refresh">``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from redis.exceptions import RedisError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from adapters import ledger_credit
from gateway import events
from gateway.auth import merchant_for_token
from gateway.ratelimit import source_of
from gateway.serialize import decision_json
from gateway.validation import InvalidBody, validate
from ledger import refundable
from ledger.models import (
    Action,
    ActionStatus,
    Customer,
    Decision,
    DecisionStatus,
    Dispute,
    InboxEvent,
    Invoice,
    Payment,
    Refund,
    Subscription,
    SupportRequest,
)
from policy.money import CurrencyError, exponent, from_major
from policy.timing import EARLIEST, LATEST
from reports.charts import format_amount
from reports.html import render_html
from reports.run import PROVIDERS, configured, render
from service.bootstrap import Container
from service.config import Merchant
from workers import reports, reviews
from workers.actions import new_id
from workers.cases import payment_owners
from workers.decide import enqueue_actions_of

PREFIX = "/console"
bp = Blueprint("console", __name__, url_prefix=PREFIX, template_folder="templates",
               static_folder="static", static_url_path="/static")

COOKIE = "gateway_console"
SIGN_IN_COOKIE = "gateway_console_sign_in"  # the sign-in form's CSRF token, before a session
SESSION_SECONDS = 8 * 3600
_LIMITED = "console sign-in"  # the failure limiter's key for sign-ins: no merchant has this name
_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'")
_REPORT_CSP = _CSP.replace("style-src 'self'", "style-src 'unsafe-inline'")  # inline CSS only


@dataclass(frozen=True)
class ConsoleSession:
    merchant: Merchant
    reviewer: str
    csrf: str


def _container() -> Container:
    container: Container = current_app.extensions["gateway"]
    return container


# --- sessions, sign-in and the checks every request passes ----------------------------------


def _session_key(token: str) -> str:
    """Where a session lives in Redis: under a digest of its cookie, so that what Redis holds
    cannot be replayed as a cookie."""
    return "gateway:console:session:" + hashlib.sha256(token.encode()).hexdigest()


def _load_session() -> ConsoleSession | None:
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 100:
        return None
    raw = _container().redis.get(_session_key(token))
    if raw is None:
        return None
    stored = json.loads(raw)
    merchant = _container().settings.merchant(stored["merchant"])
    if merchant is None:  # no longer configured
        return None
    if not hmac.compare_digest(str(stored.get("admin_token", "")), _token_mark(token, merchant)):
        return None  # signed in with an admin token the merchant no longer has
    return ConsoleSession(merchant, stored["reviewer"], stored["csrf"])


def _same(given: str, expected: str) -> bool:
    """A constant-time comparison of a token sent by the browser, whatever characters it holds
    (``hmac.compare_digest`` refuses a str that is not ASCII)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"),
                               expected.encode("utf-8", "surrogatepass"))


def _token_mark(cookie: str, merchant: Merchant) -> str:
    """The merchant's admin token as the session keeps it: an HMAC under the session's cookie,
    which Redis never holds, so what Redis holds reveals nothing of the token; a session ends
    when the token changes."""
    return hmac.new(cookie.encode(), merchant.admin_token.encode("utf-8", "surrogatepass"),
                    hashlib.sha256).hexdigest()


@bp.before_request
def _check() -> BaseResponse | tuple[str, int] | None:
    """Every console page needs a session (else: the sign-in page), and every form its CSRF
    token; Redis down answers 503 (the session cannot be read)."""
    if request.endpoint in ("console.sign_in", "console.static"):
        return None
    if "\x00" in request.path:  # no id of ours (PostgreSQL would refuse to look it up)
        return _page_error(404, "There is no such page.")
    try:
        found = _load_session()
    except RedisError:
        return _page_error(503, "The console cannot reach its session store (Redis). Try again "
                                "in a moment.")
    if found is None:
        if request.method == "GET":
            return redirect(url_for("console.sign_in", next=request.full_path.rstrip("?")))
        return redirect(url_for("console.sign_in"))
    g.console = found
    g.merchant = found.merchant
    if request.method == "POST" and not _same(request.form.get("csrf_token", ""), found.csrf):
        return _page_error(400, "This form has expired or did not come from the console: "
                                "nothing was changed. Go back, reload the page and try again.")
    return None


@bp.after_app_request
def _headers(response: Response) -> BaseResponse:
    """The console's headers on every answer under its prefix: its views', and the app's own
    404, 405 and 413 for a console address no view takes."""
    if not (request.path + "/").startswith(PREFIX + "/"):
        return response
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> BaseResponse | tuple[str, int]:
    """The merchant's admin token and the reviewer's name; a failure counts against the
    address as a failed webhook signature does, and too many answer 429."""
    next_page = _safe_next(request.values.get("next"))
    if request.method == "GET":
        return _sign_in_form(next_page)
    container = _container()
    source = source_of(request.remote_addr)
    if wait := container.failure_limiter.blocked_for(source, _LIMITED):
        body = render_template("console/sign_in.html", next=next_page, csrf="",
                               error=f"Too many failed sign-ins: try again in {wait} seconds.")
        return Response(body, 429, headers={"Retry-After": str(wait)})
    pre = request.cookies.get(SIGN_IN_COOKIE, "")
    if not pre or not _same(request.form.get("csrf_token", ""), pre):
        return _sign_in_form(next_page, "The sign-in form expired: please sign in again.", 400)
    reviewer = request.form.get("reviewer", "").strip()
    if not 0 < len(reviewer) <= 100 or not reviewer.isprintable():
        return _sign_in_form(next_page, "Your name is required (at most 100 characters): it is "
                                        "recorded with everything you do here.", 400)
    merchant = merchant_for_token(container.settings.merchants,
                                  request.form.get("token", "").strip())
    if merchant is None:
        container.failure_limiter.record_failure(source, _LIMITED)
        return _sign_in_form(next_page, "That admin token is not valid.", 401)
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    try:
        container.redis.set(_session_key(token), json.dumps(
            {"merchant": merchant.name, "admin_token": _token_mark(token, merchant),
             "reviewer": reviewer, "csrf": csrf,
             "signed_in_at": datetime.now(UTC).isoformat()}), ex=SESSION_SECONDS)
    except RedisError:
        return _page_error(503, "The console cannot reach its session store (Redis). Try "
                                "again in a moment.")
    response = redirect(next_page or url_for("console.review_queue"))
    response.set_cookie(COOKIE, token, max_age=SESSION_SECONDS, path="/console", httponly=True,
                        secure=merchant.livemode, samesite="Lax")
    response.delete_cookie(SIGN_IN_COOKIE, path="/console")
    return response


def _sign_in_form(next_page: str | None, error: str | None = None, status: int = 200
                  ) -> tuple[str, int] | Response:
    pre = secrets.token_urlsafe(32)
    body = render_template("console/sign_in.html", next=next_page, csrf=pre, error=error)
    response = Response(body, status)
    response.set_cookie(SIGN_IN_COOKIE, pre, max_age=3600, path="/console", httponly=True,
                        samesite="Lax")
    return response


def _safe_next(value: str | None) -> str | None:
    """A page of the console to go back to after signing in; nothing else (no open redirect)."""
    if not value or not value.startswith("/console/") or "//" in value or "\\" in value:
        return None
    return value if value.isprintable() and len(value) <= 500 else None


@bp.post("/sign-out")
def sign_out() -> BaseResponse:
    token = request.cookies.get(COOKIE, "")
    with suppress(RedisError):  # the cookie goes anyway, and the session expires on its own
        _container().redis.delete(_session_key(token))
    response = redirect(url_for("console.sign_in"))
    response.delete_cookie(COOKIE, path="/console")
    return response


def _page_error(status: int, message: str) -> tuple[str, int]:
    return render_template("console/error.html", message=message, status=status), status


def _actor() -> str:
    return str(g.console.reviewer)


@bp.get("/")
def home() -> BaseResponse:
    return redirect(url_for("console.review_queue"))


# --- the review queue and decisions ----------------------------------------------------------


@bp.get("/reviews")
def review_queue() -> str:
    """Decisions waiting for a person, oldest first, with what each is about."""
    with _container().sessions() as session:
        waiting = [_decision_view(session, d) for d in reviews.pending(session, g.merchant.name)]
    return render_template("console/reviews.html", decisions=waiting)


@bp.get("/decisions/<decision_id>")
def decision_page(decision_id: str, error: str | None = None, status: int = 200
                  ) -> tuple[str, int]:
    with _container().sessions() as session:
        found = session.get(Decision, decision_id)
        if found is None or found.merchant != g.merchant.name:
            return _page_error(404, f"There is no decision {decision_id}.")
        view = _decision_view(session, found)
    return render_template("console/decision.html", d=view, error=error), status


@bp.post("/decisions/<decision_id>/answer")
def answer_decision(decision_id: str) -> BaseResponse | tuple[str, int]:
    """Approve with a refund and/or a credit (in the payment's currency, bounded as the API
    bounds them), or deny; then back to the decision, where its actions show as they run."""
    container = _container()
    try:
        body = _review_body(decision_id)
        with container.sessions() as session, session.begin():
            reviews.answer_in(session, g.merchant, decision_id, body, datetime.now(UTC))
    except InvalidBody as exc:
        return decision_page(decision_id, f"{exc.field}: {exc.message}", 400)
    except reviews.ReviewError as exc:
        return decision_page(decision_id, exc.message, exc.status)
    enqueue_actions_of(container, decision_id)
    return redirect(url_for("console.decision_page", decision_id=decision_id))


def _review_body(decision_id: str) -> dict[str, Any]:
    """The review form as the API's ``ReviewAnswer`` body, checked by the same schema."""
    approve = request.form.get("answer") == "approve"
    body: dict[str, Any] = {"approve": approve, "reviewer": _actor()}
    note = request.form.get("note", "").strip()
    if note:
        body["note"] = note
    if approve:
        currency = request.form.get("currency", "")
        for name in ("refund", "credit"):
            amount = request.form.get(name, "").strip()
            if amount:
                body[name] = {"amount": _minor_units(name, amount, currency),
                              "currency": currency}
        if "refund" not in body and "credit" not in body:
            raise InvalidBody("refund", "an approval needs a refund or a credit amount")
    return validate("ReviewAnswer", body)


_AMOUNT = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,4})?")  # ASCII digits: no exponent, NaN or Infinity


def _minor_units(field: str, text: str, currency: str) -> int:
    """``12.50`` USD as 1250; refused when it is not a positive amount in whole minor units."""
    try:
        places = exponent(currency)
    except CurrencyError:
        raise InvalidBody("currency", f"{currency!r} is not a currency") from None
    try:
        if not _AMOUNT.fullmatch(text):
            raise ValueError(text)
        value = from_major(Decimal(text), currency).amount
    except (CurrencyError, ValueError):
        raise InvalidBody(field, f"must be an amount in {currency} with at most "
                                 f"{places} decimals, e.g. 12.50") from None
    if value <= 0:
        raise InvalidBody(field, "must be more than zero")
    return value


# Until the provider confirms (a submitted refund waits for its webhook), the page reloads.
_RUNNING = (ActionStatus.PENDING, ActionStatus.EXECUTING, ActionStatus.SUBMITTED)


def _decision_view(session: Session, d: Decision) -> dict[str, Any]:
    """A decision as the pages show it: the API's JSON, with its payment's refund position
    and whether an action is still running."""
    actions = list(session.scalars(select(Action).where(Action.decision_id == d.id)
                                   .order_by(Action.created_at)))
    view = decision_json(d, actions)
    payment = reviews.payment_of(session, d)
    view["payment"] = None
    if payment is not None:
        position = refundable.remainder(session, payment)
        view["payment"] = {"id": payment.provider_id, "provider": payment.provider,
                           "captured": position.captured, "left": position.left,
                           "currency": payment.currency,
                           "dispute": position.dispute.state if position.dispute else None}
    view["running"] = any(a.status in _RUNNING for a in actions)
    view["in_review"] = d.status == DecisionStatus.NEEDS_REVIEW
    view["facts"] = _facts(d.case or {})
    return view


def _facts(case: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """The Case's facts by part (request, account, order, ...), each a list of (name, text)."""
    parts = []
    for part, values in case.items():
        if isinstance(values, dict):
            parts.append((part, [(name, _text(value)) for name, value in _flat(values)]))
    return parts


def _flat(values: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in values.items():
        if isinstance(value, dict) and set(value) != {"amount", "currency"} and value:
            yield from _flat(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def _text(value: Any) -> str:
    """A fact as text: money in major units, lists and the rest as JSON."""
    if isinstance(value, dict) and set(value) == {"amount", "currency"}:
        return _money(value["amount"], value["currency"])
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _money(amount: Any, currency: Any) -> str:
    """Minor units as the report shows them (``1,234.50``), with the currency's code."""
    return f"{format_amount(amount, str(currency))} {currency}"


@bp.app_template_filter("money")
def _money_filter(value: Any) -> str:
    """Money (the ledger's ``Money`` or the API's ``{"amount", "currency"}``) as text."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return _money(value.get("amount"), value.get("currency"))
    return _money(value.amount, value.currency)


@bp.app_template_filter("moment")
def _moment(value: Any) -> str:
    """An ISO time as people read it: ``2026-11-30 01:30 UTC``."""
    if not value:
        return "-"
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if at.tzinfo else \
        at.strftime("%Y-%m-%d %H:%M")


@bp.app_template_filter("major")
def _major(value: Any) -> str:
    """Money as a plain amount in major units, as the review form's fields take it."""
    if value is None:
        return ""
    places = exponent(value.currency)
    return f"{Decimal(value.amount).scaleb(-places):.{places}f}"


# --- accounts ---------------------------------------------------------------------------------


@bp.get("/accounts")
def accounts() -> BaseResponse | str:
    """Find an account by customer id, e-mail, subscription id or payment id."""
    query = request.args.get("q", "").strip()[:255]
    found: list[dict[str, Any]] = []
    if query and "\x00" not in query:  # a NUL is in no id or e-mail (nor can PostgreSQL ask)
        with _container().sessions() as session:
            found = _find_accounts(session, g.merchant.name, query)
        if len(found) == 1:
            return redirect(url_for("console.account", account=found[0]["account"]))
    return render_template("console/accounts.html", q=query, found=found)


def _find_accounts(session: Session, merchant: str, query: str) -> list[dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}

    def add(account: str | None, how: str) -> None:
        if account:
            found.setdefault(account, {"account": account, "how": how})

    for customer in session.scalars(select(Customer).where(
            Customer.merchant == merchant,
            or_(Customer.provider_id == query, func.lower(Customer.email) == query.lower()))
            .limit(50)):
        add(customer.provider_id, f"customer {customer.email or customer.provider_id}")
    payment = session.scalars(select(Payment).where(
        Payment.merchant == merchant, Payment.provider_id == query)).first()
    if payment is not None:  # its customer's, else whoever the ledger says owns it
        for owner in [payment.customer_ref] if payment.customer_ref else sorted(
                payment_owners(session, payment)):
            add(owner, f"payment {payment.provider_id}")
    sub = session.scalars(select(Subscription).where(
        Subscription.merchant == merchant, Subscription.provider_id == query)).first()
    if sub is not None:  # a PayPal subscription is its own account until a payer is known
        add(sub.customer_ref or sub.provider_id, f"subscription {sub.provider_id}")
    if session.scalar(select(Decision.id).where(Decision.merchant == merchant,
                                                Decision.account_ref == query).limit(1)):
        add(query, "decisions for this account")
    return list(found.values())


@bp.get("/accounts/<path:account>")
def account(account: str) -> tuple[str, int]:
    merchant = g.merchant.name
    with _container().sessions() as session:
        view = _account_view(session, merchant, account)
    if view is None:
        return _page_error(404, f"There is no account {account}.")
    return render_template("console/account.html", a=view), 200


def _account_view(session: Session, merchant: str, account: str) -> dict[str, Any] | None:
    """Everything the ledger holds about an account, or None when it holds nothing."""
    customer = session.scalars(select(Customer).where(
        Customer.merchant == merchant, Customer.provider_id == account)).first()
    subs = list(session.scalars(select(Subscription).where(
        Subscription.merchant == merchant,
        or_(Subscription.customer_ref == account, Subscription.provider_id == account))
        .order_by(Subscription.id)))
    sub_ids = [s.provider_id for s in subs]
    invoices = list(session.scalars(select(Invoice).where(
        Invoice.merchant == merchant, Invoice.customer_ref == account).order_by(Invoice.id)))
    payments = list(session.scalars(select(Payment).where(
        Payment.merchant == merchant,
        or_(Payment.customer_ref == account, Payment.subscription_ref.in_(sub_ids),
            Payment.invoice_ref.in_([i.provider_id for i in invoices])))
        .order_by(Payment.paid_at, Payment.id)))
    payment_ids = [p.provider_id for p in payments]
    refunds = list(session.scalars(select(Refund).where(
        Refund.merchant == merchant, Refund.payment_ref.in_(payment_ids)).order_by(Refund.id)))
    disputes = list(session.scalars(select(Dispute).where(
        Dispute.merchant == merchant, Dispute.payment_ref.in_(payment_ids))
        .order_by(Dispute.id)))
    decisions = list(session.scalars(select(Decision).where(
        Decision.merchant == merchant, Decision.account_ref == account)
        .order_by(Decision.evaluated_at.desc()).limit(200)))
    requests = list(session.scalars(select(SupportRequest).where(
        SupportRequest.merchant == merchant, SupportRequest.account_ref == account)
        .order_by(SupportRequest.created_at.desc()).limit(200)))
    credit = ledger_credit.statement(session, merchant, account)
    if not (customer or subs or invoices or payments or decisions or requests
            or credit.entries):
        return None
    refunded: dict[str, int] = {}  # per payment, the refunds the ledger holds that stand
    for r in refunds:
        if r.payment_ref and r.status.lower() not in refundable.GONE:
            refunded[r.payment_ref] = refunded.get(r.payment_ref, 0) + r.amount
    return {"account": account, "customer": customer, "subscriptions": subs,
            "invoices": invoices, "payments": payments, "refunds": refunds,
            "refunded": refunded,
            "disputes": disputes, "decisions": decisions, "requests": requests,
            "credit": credit}


# --- events -----------------------------------------------------------------------------------


_EVENT_FORM = ("status", "provider", "type", "received_from", "received_to", "starting_after")


@bp.get("/events")
def event_search() -> tuple[str, int]:
    """The inbox, newest first: by status, provider, type and date, a page at a time."""
    args = {k: v for k, v in request.args.items() if k in _EVENT_FORM}
    try:
        found = events.parse_search(args, _EVENT_FORM)
    except InvalidBody as exc:
        return render_template("console/events.html", args=args, rows=[], more=False,
                               error=f"{exc.field}: {exc.message}"), 400
    rows, more = events.search(_container(), g.merchant.name, found)
    after: dict[str, Any] = {k: v for k, v in args.items() if k != "starting_after" and v}
    next_page = url_for("console.event_search", **after, starting_after=rows[-1].id) \
        if more and rows else None
    with _container().sessions() as session:
        dead = _dead_count(session, g.merchant.name)
    return render_template("console/events.html", args=args, rows=rows, next_page=next_page,
                           dead=dead, error=None), 200


def _dead_count(session: Session, merchant: str) -> int:
    return int(session.scalar(select(func.count()).select_from(InboxEvent).where(
        InboxEvent.merchant == merchant, InboxEvent.status == "dead")) or 0)


_ROW_ID_MAX = 2 ** 63 - 1  # the largest BIGINT: a larger id (from the address) names no row


def _event_row(session: Session, inbox_id: int) -> InboxEvent | None:
    if inbox_id > _ROW_ID_MAX:
        return None
    row = session.get(InboxEvent, inbox_id)
    return row if row is not None and row.merchant == g.merchant.name else None


@bp.get("/events/<int:inbox_id>")
def event_page(inbox_id: int) -> tuple[str, int]:
    """One event as received: its headers (none of them secret), its body, its status."""
    with _container().sessions() as session:
        row = _event_row(session, inbox_id)
        if row is None:
            return _page_error(404, "There is no such event.")
        view = {"row": row, "body": _pretty(row.raw_body),
                "headers": sorted((row.headers or {}).items()),
                "replayable": row.status not in events.SETTLED}
    return render_template("console/event.html", e=view), 200


def _pretty(raw: bytes) -> str:
    try:
        return json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
    except ValueError:
        return raw.decode("utf-8", "replace")


@bp.get("/events/by-id/<path:event_id>")
def event_by_id(event_id: str) -> BaseResponse | tuple[str, int]:
    """The provider's event id (what a report row names) to its page."""
    with _container().sessions() as session:
        found = session.scalar(select(InboxEvent.id).where(
            InboxEvent.merchant == g.merchant.name, InboxEvent.event_id == event_id)
            .order_by(InboxEvent.id).limit(1))
    if found is None:
        return _page_error(404, f"There is no event {event_id}.")
    return redirect(url_for("console.event_page", inbox_id=found))


@bp.route("/events/<int:inbox_id>/replay", methods=["GET", "POST"])
def replay_event(inbox_id: int) -> BaseResponse | tuple[str, int]:
    """Confirm, then hand a failed event to the workers again."""
    with _container().sessions() as session:
        row = _event_row(session, inbox_id)
        if row is None:
            return _page_error(404, "There is no such event.")
        event_id, status = row.event_id, row.status
    if status in events.SETTLED:
        return _page_error(409, f"Event {event_id} is {status}: only a dead, retrying or "
                                f"pending event is replayed.")
    if request.method == "GET":
        return render_template("console/confirm.html", title=f"Replay event {event_id}?",
                               detail=f"It is {status}. The workers apply it again now; a "
                                      f"payment it carries is never applied twice.",
                               action=url_for("console.replay_event", inbox_id=inbox_id),
                               back=url_for("console.event_page", inbox_id=inbox_id)), 200
    try:
        events.replay(_container(), g.merchant.name, _actor(), [event_id])
    except RedisError:
        return _page_error(503, "The queue cannot be reached: the event is pending, and the "
                                "sweeper hands it to the workers when it can.")
    return redirect(url_for("console.event_page", inbox_id=inbox_id))


@bp.route("/events/replay-dead", methods=["GET", "POST"])
def replay_dead() -> BaseResponse | tuple[str, int]:
    """Confirm, then hand every dead event to the workers again."""
    if request.method == "GET":
        with _container().sessions() as session:
            dead = _dead_count(session, g.merchant.name)
        return render_template("console/confirm.html", title=f"Replay all {dead} dead events?",
                               detail="Each is applied again now, in the order received.",
                               action=url_for("console.replay_dead"),
                               back=url_for("console.event_search", status="dead")), 200
    try:
        events.replay(_container(), g.merchant.name, _actor(), None)
    except RedisError:
        return _page_error(503, "The queue cannot be reached: the events are pending, and the "
                                "sweeper hands them to the workers when it can.")
    return redirect(url_for("console.event_search"))


# --- reconciliation ---------------------------------------------------------------------------


@bp.route("/reports", methods=["GET", "POST"])
def reports_page() -> BaseResponse | tuple[str, int]:
    """Pick a period; a worker reads the providers' records and builds the report."""
    today = datetime.now(UTC).date()
    first = today.replace(day=1)
    last_month = (first - timedelta(days=1)).replace(day=1)
    values = {"from": request.form.get("from", last_month.isoformat()),
              "to": request.form.get("to", first.isoformat())}
    configured_ = configured(g.merchant)
    if request.method == "GET":
        return render_template("console/reports.html", values=values, sources=configured_,
                               error=None), 200
    try:
        start, end = date.fromisoformat(values["from"]), date.fromisoformat(values["to"])
    except ValueError:
        return render_template("console/reports.html", values=values, sources=configured_,
                               error="Both dates are needed, as YYYY-MM-DD."), 400
    if not (EARLIEST.date() <= start < end <= LATEST.date()):
        return render_template("console/reports.html", values=values, sources=configured_,
                               error=f"The period must end after it starts, between "
                                     f"{EARLIEST.year} and {LATEST.year}."), 400
    sources = [p for p in PROVIDERS if request.form.get(f"source_{p}")]
    if not sources:
        return render_template("console/reports.html", values=values, sources=configured_,
                               error="Pick at least one provider to reconcile against."), 400
    report_id = new_id("rpt")
    try:
        reports.start(_container(), report_id, g.merchant.name, start, end, sources)
    except RedisError:
        return _page_error(503, "The report could not be queued: try again in a moment.")
    return redirect(url_for("console.report_page", report_id=report_id))


_DOWNLOADS = {"csv": "text/csv", "json": "application/json"}


@bp.get("/reports/<report_id>")
def report_page(report_id: str) -> BaseResponse | tuple[str, int]:
    """The report (its figures, charts and discrepancies, each linked to its event and
    account), once a worker has built it; until then a page that reloads itself."""
    found = _report(report_id)
    if not isinstance(found, dict):
        return found
    downloads = [(f"Download {fmt.upper()}", url_for("console.report_download",
                                                     report_id=report_id, fmt=fmt))
                 for fmt in _DOWNLOADS]
    page = render_html({**found, "event_link": _console_path("/console/events/by-id/")
                        + "{event_id}"},
                       toolbar=[("Back to the console", url_for("console.reports_page")),
                                *downloads],
                       account_link=_console_path("/console/accounts") + "?q={provider_id}")
    response = Response(stream_with_context(page), mimetype="text/html; charset=utf-8")
    response.headers["Content-Security-Policy"] = _REPORT_CSP
    return response


def _console_path(path: str) -> str:
    """A console address as a link template may hold it (braces are the template's)."""
    return quote(request.script_root + path, safe="/")


@bp.get("/reports/<report_id>/report.<fmt>")
def report_download(report_id: str, fmt: str) -> BaseResponse | tuple[str, int]:
    if fmt not in _DOWNLOADS:
        return _page_error(404, "Reports download as CSV or JSON.")
    found = _report(report_id)
    if not isinstance(found, dict):
        return found
    name = f"reconciliation-{found.get('merchant')}-{found.get('from')}-{found.get('to')}.{fmt}"
    return Response(stream_with_context(render(found, fmt)),
                    mimetype=f"{_DOWNLOADS[fmt]}; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _report(report_id: str) -> dict[str, Any] | BaseResponse | tuple[str, int]:
    """The finished report, or the page to answer instead (waiting, failed, not found)."""
    try:
        job = reports.find(_container(), report_id, g.merchant.name)
        if job is None:
            return _page_error(404, "There is no such report (reports are kept a day).")
        state = reports.state(job)
        if state == "failed":
            return _page_error(502, f"The report failed: {reports.failure(job)}")
        report = job.return_value() if state == "ready" else None
    except RedisError:
        return _page_error(503, "Reports cannot be read right now: try again in a moment.")
    if state != "ready":
        return render_template("console/waiting.html", what="The report is being built",
                               state=state), 202
    if report is None:
        return _page_error(404, "There is no such report (reports are kept a day).")
    return dict(report)
