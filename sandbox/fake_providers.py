"""A local fake of the Stripe and PayPal APIs the adapters call: refunds (and Stripe's listing of
them), subscription cancellations (Stripe's kept as it keeps them: a ``cancel_at`` carried out
when due, a cancelled one not cancelled again) and customer-balance credits. The demo runs
against it, and so do tests whose worker is another process (where ``responses`` cannot
reach).

It keeps books as the providers do. It knows the payments it captured and the
subscriptions there are, learnt from the webhooks the test or demo sends (``observe``: Stripe
charges, disputes and subscriptions, PayPal sales, captures, disputes and subscriptions) or told
directly (``add_payment``, ``dispute``, ``add_subscription``), and refuses what the real APIs
refuse, with their status codes and error bodies: a refund of an unknown payment, of a disputed
one, of one already fully refunded, or of more than is left; a change to an unknown
subscription. A refund with no amount refunds what is left. ``books()`` says, per payment, what
was captured and what the fake refunded. ``FakeProviders(lenient=True)`` also accepts refunds
of payments it was never told about, as if each had been captured for exactly what is refunded,
and treats an unknown subscription as an active one, for tools that cannot feed it.

It also answers the reads the reports and ``gateway backfill`` make: Stripe's balance
transactions and events, PayPal's Transaction Search and webhook-event listing, built from the
payments and events it observed and the refunds it made. Each account sees its own: a Stripe
call is scoped by its API key, a PayPal call by the client id its token was issued to, and an
event or payment observed with ``account=`` belongs to that account only (one observed without
belongs to every account).

It keeps the providers' idempotency promise: a repeated Idempotency-Key (Stripe) or
PayPal-Request-Id (PayPal) is answered as the first request was, a refusal included, and refunds
nothing more; Stripe refuses a key reused with other parameters. A 5xx answer is not kept. Every
request is recorded so tests can count what reached the "provider".
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gateway.envelope import parse_time
from policy.money import (
    Money,
    from_decimal_string,
    from_provider_amount,
    normalize_currency,
    to_decimal_string,
    to_provider_amount,
)

Answer = tuple[int, Any]  # HTTP status and JSON body

_PAYPAL_REFUND = re.compile(r"/v(1/payments/sale|2/payments/captures)/([^/]+)/refund")
_STRIPE_SUBSCRIPTION = re.compile(r"/v1/subscriptions/([^/]+)")
_PAYPAL_SUBSCRIPTION = re.compile(r"/v1/billing/subscriptions/([^/]+)(/cancel)?")
# A PayPal subscription's stages: it moves forward only (active and suspended go back and forth).
_PAYPAL_STAGE = {"APPROVAL_PENDING": 0, "APPROVED": 1, "ACTIVE": 2, "SUSPENDED": 2,
                 "CANCELLED": 3, "EXPIRED": 3}
_STRIPE_ENDED = frozenset({"canceled", "incomplete_expired"})  # never bill again
_STRIPE_SETTLED = frozenset({"won", "warning_closed"})  # dispute statuses that end it
_PAYPAL_SETTLED = frozenset({"RESOLVED_SELLER_FAVOUR"})  # outcomes that leave the money
_IDEMPOTENCY_MESSAGE = (
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with. Try using a key other than '{key}' if you meant to execute a different request.")
_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£"}
_PAYPAL_TOKEN = "A21-fake."  # + the client id, so the reads know whose books to show

# Why a refund is refused, as each API says it: Stripe (status, code, message) ...
_STRIPE_REFUSALS: Mapping[str, tuple[int, str, str]] = {
    "not_found": (404, "resource_missing", "No such {param}: '{id}'"),
    "disputed": (400, "charge_disputed", "Charge {id} has been charged back; cannot issue a "
                 "refund."),
    "refunded": (400, "charge_already_refunded", "Charge {id} has already been refunded."),
    "too_large": (400, "amount_too_large", "Refund amount ({amount}) is greater than unrefunded "
                  "amount on charge ({left})"),
    "invalid": (400, "parameter_invalid_integer", "Invalid amount: {raw}"),
}
# ... PayPal v1 sales (status, name, message) ...
_PAYPAL_V1: Mapping[str, tuple[int, str, str]] = {
    "not_found": (404, "INVALID_RESOURCE_ID", "Requested resource ID was not found."),
    "disputed": (400, "TRANSACTION_REFUSED", "The request was refused: the sale is disputed."),
    "refunded": (400, "TRANSACTION_ALREADY_REFUNDED",
                 "Requested transaction has already been fully refunded."),
    "too_large": (400, "REFUND_EXCEEDED_TRANSACTION_AMOUNT",
                  "Refund amount exceeded transaction amount."),
    "invalid": (400, "VALIDATION_ERROR", "Invalid request - see details."),
}
# ... and PayPal v2 captures (status, name, issue).
_PAYPAL_V2: Mapping[str, tuple[int, str, str]] = {
    "not_found": (404, "RESOURCE_NOT_FOUND", "INVALID_RESOURCE_ID"),
    "disputed": (422, "UNPROCESSABLE_ENTITY", "CAPTURE_DISPUTED_PARTIAL_REFUND_NOT_ALLOWED"),
    "refunded": (422, "UNPROCESSABLE_ENTITY", "CAPTURE_FULLY_REFUNDED"),
    "too_large": (422, "UNPROCESSABLE_ENTITY", "REFUND_AMOUNT_EXCEEDED"),
    "invalid": (400, "INVALID_REQUEST", "INVALID_PARAMETER_VALUE"),
}


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: str


@dataclass
class _Payment:
    """A captured payment: amounts in ISO minor units of ``currency`` (upper case)."""

    provider: str
    captured: int
    currency: str
    refunded: int = 0
    intent: str | None = None  # a Stripe charge's payment intent
    assumed: bool = False  # known only from a lenient refund, not from a capture
    account: str | None = None  # the API key or client id it belongs to (None: every one)
    created: int = 0  # unix seconds of the capture

    @property
    def left(self) -> int:
        return self.captured - self.refunded


@dataclass(frozen=True)
class _Movement:
    """Money that moved on an account: a capture (positive) or a refund (negative), as the
    reporting reads list it."""

    provider: str
    account: str | None
    source_id: str  # the charge, sale, capture or refund
    payment_id: str  # the payment a refund is of (the payment itself for a capture)
    amount: int  # ISO minor units, negative for a refund
    currency: str
    created: int


@dataclass
class FakeProviders:
    requests: list[Recorded] = field(default_factory=list)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> refund made
    lock: threading.Lock = field(default_factory=threading.Lock)
    refunds_down: bool = False  # answer refund requests 500, as an outage would
    lenient: bool = False  # refund payments it was never told about
    _payments: dict[str, _Payment] = field(default_factory=dict)
    _disputed: set[str] = field(default_factory=set)
    _answers: dict[str, tuple[Any, Answer]] = field(default_factory=dict)  # key -> first answer
    _stripe_refunds: list[dict[str, Any]] = field(default_factory=list)  # oldest first
    _clock: int = 0  # the last Stripe refund's ``created``
    _movements: list[_Movement] = field(default_factory=list)  # oldest first
    _events: list[tuple[str, str | None, dict[str, Any]]] = field(default_factory=list)
    _event_ids: set[tuple[str, Any]] = field(default_factory=set)
    _stripe_subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id
    now: Callable[[], float] = time.time  # Stripe's time (unix seconds), for cancel_at
    _paypal_subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id

    # -- what the test tells it, and what it shows -------------------------------------------

    def add_payment(self, provider_id: str, amount: int, currency: str, *,
                    provider: str = "stripe") -> None:
        """A payment captured for ``amount`` minor units; refunds it already made stay."""
        self._capture(provider, provider_id, amount, currency)

    def dispute(self, provider_id: str, open: bool = True) -> None:
        """Open (or, with ``open=False``, end in the seller's favour) a dispute of a payment."""
        with self.lock:
            (self._disputed.add if open else self._disputed.discard)(provider_id)

    def observe(self, payload: Mapping[str, Any], account: str | None = None) -> None:
        """Learn from a webhook payload exactly as its sender sends it; others are ignored.

        The event is also one the provider sent (its event listing names it), on ``account``
        (a Stripe API key or PayPal client id; None: every account)."""
        try:
            if payload.get("object") == "event":
                self._observe_stripe(payload["data"]["object"], account)
                self._sent("stripe", account, payload)
            elif "event_type" in payload:
                self._observe_paypal(str(payload["event_type"]), payload["resource"], account)
                self._sent("paypal", account, payload)
        except (KeyError, TypeError, ValueError, ArithmeticError):
            pass  # not a payload whose money the fake can read

    def _sent(self, provider: str, account: str | None, payload: Mapping[str, Any]) -> None:
        with self.lock:
            if (provider, payload.get("id")) not in self._event_ids:  # a redelivery: once
                self._event_ids.add((provider, payload.get("id")))
                self._events.append((provider, account, json.loads(json.dumps(payload))))

    def books(self) -> dict[str, tuple[int, int, str]]:
        """(captured, refunded, currency) per payment id, in minor units."""
        with self.lock:
            return {pid: (p.captured, p.refunded, p.currency)
                    for pid, p in self._payments.items()}

    def posts_with_key(self, key: str) -> int:
        """Refund requests carrying ``key`` (paypalrestsdk also sends it on the token call)."""
        return sum(1 for r in self.requests
                   if r.method == "POST" and r.path.endswith("refund" if "/payments/" in r.path
                                                             else "refunds")
                   and key in (r.headers.get("Idempotency-Key"),
                               r.headers.get("PayPal-Request-Id")))

    def _observe_stripe(self, obj: Mapping[str, Any], account: str | None = None) -> None:
        if obj.get("object") == "charge" and obj.get("status") == "succeeded" and obj.get(
                "captured", True):
            paid = from_provider_amount("stripe", int(obj.get("amount_captured") or obj["amount"]),
                                        str(obj["currency"]).upper())
            self._capture("stripe", obj["id"], paid.amount, paid.currency,
                          obj.get("payment_intent"), account=account,
                          created=int(obj.get("created") or 0))
        elif obj.get("object") == "dispute":
            self.dispute(obj["charge"], open=obj.get("status") not in _STRIPE_SETTLED)
        elif obj.get("object") == "subscription":
            with self.lock:  # a cancellation is final, whatever order the events come in
                sub = self._stripe_subscriptions.setdefault(str(obj["id"]),
                                                     _new_subscription(str(obj["id"])))
                if sub["status"] not in _STRIPE_ENDED:
                    sub.update(status=str(obj.get("status") or "active"),
                               cancel_at=obj.get("cancel_at"),
                               canceled_at=obj.get("canceled_at"))

    def _observe_paypal(self, event_type: str, resource: Mapping[str, Any],
                        account: str | None = None) -> None:
        amount = resource.get("amount") or {}
        created = parse_time(resource.get("create_time"))
        at = int(created.timestamp()) if created else 0
        if event_type == "PAYMENT.SALE.COMPLETED":
            self._add_paypal(resource["id"], amount["total"], amount["currency"], account, at)
        elif event_type == "PAYMENT.CAPTURE.COMPLETED":
            self._add_paypal(resource["id"], amount["value"], amount["currency_code"], account,
                             at)
        elif event_type.startswith("CUSTOMER.DISPUTE."):
            outcome = (resource.get("dispute_outcome") or {}).get("outcome_code")
            settled = event_type.endswith(".RESOLVED") and outcome in _PAYPAL_SETTLED
            for txn in resource.get("disputed_transactions") or []:
                self.dispute(txn["seller_transaction_id"], open=not settled)
        elif event_type.startswith("BILLING.SUBSCRIPTION.") and resource.get("status"):
            self._learn_paypal_subscription(str(resource["id"]), str(resource["status"]))

    def _learn_paypal_subscription(self, subscription_id: str, status: str) -> None:
        with self.lock:  # never back to an earlier stage, whatever order events come in
            sub = self._paypal_subscriptions.setdefault(
                subscription_id, {"id": subscription_id, "status": status})
            if _PAYPAL_STAGE.get(status, 0) >= _PAYPAL_STAGE.get(sub["status"], 0):
                sub["status"] = status

    def _add_paypal(self, provider_id: str, value: str, currency: str, account: str | None,
                    created: int) -> None:
        money = from_decimal_string("paypal", value, currency)
        self._capture("paypal", provider_id, money.amount, money.currency, account=account,
                      created=created)

    def _capture(self, provider: str, provider_id: str, amount: int, currency: str,
                 intent: str | None = None, *, account: str | None = None,
                 created: int = 0) -> None:
        code = normalize_currency(currency)
        with self.lock:
            known = self._payments.get(provider_id)
            if known is not None and known.provider == provider:
                known.captured, known.currency, known.assumed = amount, code, False
                known.intent = intent or known.intent
                return
            self._payments[provider_id] = _Payment(provider, amount, code, intent=intent,
                                                   account=account, created=created)
            self._movements.append(_Movement(provider, account, provider_id, provider_id,
                                             amount, code, created or int(time.time())))

    # -- the books: one refund, checked and made ---------------------------------------------

    def _find(self, provider: str, payment_id: str, currency: str, amount_given: bool
              ) -> _Payment | None:
        """The payment to refund; lenient, an unknown one with an amount is assumed."""
        payment = self._payments.get(payment_id)
        if payment is not None and payment.provider == provider:
            return payment
        if self.lenient and amount_given:
            return _Payment(provider, 0, normalize_currency(currency), assumed=True)
        return None

    def _refusal(self, payment_id: str, payment: _Payment, amount: int) -> str | None:
        if payment_id in self._disputed:
            return "disputed"
        if payment.assumed:
            return None
        if payment.left <= 0:
            return "refunded"
        return "too_large" if amount > payment.left else None

    def _book(self, payment_id: str, payment: _Payment, amount: int) -> None:
        if payment.assumed:
            payment.captured += amount
        payment.refunded += amount
        self._payments.setdefault(payment_id, payment)

    def _once(self, provider: str, key: str | None, params: Any, make: Callable[[], Answer]
              ) -> Answer:
        """The first answer under ``key`` (a 5xx is not kept); other ``params`` are refused."""
        if key is None:
            return make()
        slot = f"{provider}|{key}"
        if slot in self._answers:
            first, answer = self._answers[slot]
            return answer if first == params else _stripe_error(
                400, None, _IDEMPOTENCY_MESSAGE.format(key=key), kind="idempotency_error")
        answer = make()
        if answer[0] < 500:
            self._answers[slot] = (params, answer)
        return answer

    # -- Stripe ------------------------------------------------------------------------------

    def stripe_refund(self, key: str | None, form: Mapping[str, list[str]]) -> Answer:
        """``POST /v1/refunds`` with its form fields, under its Idempotency-Key."""
        params = {k: v[-1] for k, v in form.items()}
        with self.lock:
            return self._once("stripe", key, params,
                              lambda: self._stripe_refund(key, params))

    def _stripe_refund(self, key: str | None, params: dict[str, str]) -> Answer:
        param = "charge" if "charge" in params else "payment_intent"
        target = params.get(param)
        if target is None:
            return _stripe_error(400, "parameter_missing", "One of the following params should "
                                 "be provided for this request: payment_intent or charge.")
        charge = target if param == "charge" else next(
            (pid for pid, p in self._payments.items() if p.intent == target), target)
        payment = self._find("stripe", charge, "usd", "amount" in params)
        if payment is None:
            return _stripe_refused("not_found", param=param, id=target)
        try:
            amount = (payment.left if "amount" not in params else from_provider_amount(
                "stripe", int(params["amount"]), payment.currency).amount)
        except ValueError:
            amount = 0
        if amount <= 0 and "amount" in params:
            return _stripe_refused("invalid", param="amount", raw=params["amount"])
        refusal = self._refusal(charge, payment, amount)
        if refusal is not None:
            return _stripe_refused(refusal, param=param, id=charge,
                                   amount=_shown(amount, payment.currency),
                                   left=_shown(payment.left, payment.currency))
        self._book(charge, payment, amount)
        return 200, self._stripe_refund_made(key, charge, payment, amount, params)

    def _stripe_refund_made(self, key: str | None, charge: str, payment: _Payment, amount: int,
                            params: dict[str, str]) -> dict[str, Any]:
        self._clock = max(self._clock + 1, int(time.time()))
        refund: dict[str, Any] = {
            "id": f"re_fake_{len(self.refunds) + 1}", "object": "refund",
            "amount": to_provider_amount("stripe", Money(amount, payment.currency)),
            "charge": charge, "created": self._clock, "currency": payment.currency.lower(),
            "metadata": {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")},
            "payment_intent": payment.intent, "reason": params.get("reason"),
            "status": "succeeded"}
        self._stripe_refunds.append(refund)
        self.refunds[key or refund["id"]] = refund
        self._movements.append(_Movement("stripe", payment.account, refund["id"], charge,
                                         -amount, payment.currency, self._clock))
        return refund

    def stripe_subscription(self, method: str, key: str | None, subscription_id: str,
                            form: Mapping[str, list[str]]) -> Answer:
        """``POST`` (update: ``cancel_at``), ``DELETE`` (cancel now) or ``GET`` of
        ``/v1/subscriptions/<id>``, as Stripe answers them. The fake knows the subscriptions it
        observed (``customer.subscription.*``) or was told of (``add_subscription``); another
        is "No such subscription", unless ``lenient``, where it is an active one. Its
        ``cancel_at`` is carried out once ``now()`` reaches it. A
        cancelled one is still shown, but Stripe refuses to cancel it again ("No such
        subscription") or to change more than its metadata. Only a POST is idempotent on its
        key: Stripe documents that a key has no effect on a DELETE."""
        params = {"subscription": subscription_id, **{k: v[-1] for k, v in form.items()}}
        with self.lock:
            sub = self._subscription(subscription_id)
            if sub is None:  # an id it was never told of: Stripe does not know it either
                return _no_such_subscription(subscription_id)
            if method == "GET":
                return 200, dict(sub)
            if method == "DELETE":
                return self._cancel_subscription(sub)
            return self._once("stripe", key, params,
                              lambda: self._update_subscription(sub, params))

    def add_subscription(self, subscription_id: str, provider: str = "stripe",
                         status: str | None = None) -> None:
        """A subscription (active unless ``status`` says otherwise), as if its events had been
        observed."""
        if provider == "paypal":
            self._learn_paypal_subscription(subscription_id, status or "ACTIVE")
        else:
            self._observe_stripe({"object": "subscription", "id": subscription_id,
                                  "status": status or "active"})

    def paypal_subscription(self, method: str, subscription_id: str) -> Answer:
        """``GET /v1/billing/subscriptions/<id>`` or ``POST .../<id>/cancel``, as PayPal answers
        them: an unknown id is ``RESOURCE_NOT_FOUND`` (unless ``lenient``: an active one), and
        a subscription that is not active or suspended is not cancelled
        (``SUBSCRIPTION_STATUS_INVALID``), a cancelled one included."""
        with self.lock:
            if self.lenient and subscription_id not in self._paypal_subscriptions:
                self._paypal_subscriptions[subscription_id] = {"id": subscription_id,
                                                               "status": "ACTIVE"}
            sub = self._paypal_subscriptions.get(subscription_id)
            if sub is None:
                return 404, _paypal_error("RESOURCE_NOT_FOUND", "The specified resource does "
                                          "not exist.", "INVALID_RESOURCE_ID")
            if method == "GET":
                return 200, dict(sub)
            if sub["status"] not in ("ACTIVE", "SUSPENDED"):
                return 422, _paypal_error(
                    "UNPROCESSABLE_ENTITY", "The requested action could not be performed, "
                    "semantically incorrect, or failed business validation.",
                    "SUBSCRIPTION_STATUS_INVALID")
            sub["status"] = "CANCELLED"
            return 204, None

    def _subscription(self, subscription_id: str) -> dict[str, Any] | None:
        """The subscription as Stripe shows it now (None: unknown, unless ``lenient``)."""
        if self.lenient and subscription_id not in self._stripe_subscriptions:
            self._stripe_subscriptions[subscription_id] = _new_subscription(subscription_id)
        sub = self._stripe_subscriptions.get(subscription_id)
        if (sub is not None and sub["status"] not in _STRIPE_ENDED and sub["cancel_at"]
                and sub["cancel_at"] <= self.now()):
            sub.update(status="canceled", canceled_at=sub["cancel_at"])
        return sub

    def _cancel_subscription(self, sub: dict[str, Any]) -> Answer:
        if sub["status"] in _STRIPE_ENDED:
            return _no_such_subscription(sub["id"])
        sub.update(status="canceled", canceled_at=int(self.now()))
        return 200, dict(sub)

    def _update_subscription(self, sub: dict[str, Any], params: dict[str, str]) -> Answer:
        changes = [k for k in params if k != "subscription"]
        if sub["status"] in _STRIPE_ENDED and not all(
                k.startswith(("metadata[", "cancellation_details[")) for k in changes):
            return _stripe_error(400, None, "A canceled subscription can only update its "
                                 "cancellation_details and metadata.")
        if "cancel_at" in params:
            sub["cancel_at"] = _int(params["cancel_at"], 0) or None
        sub["metadata"].update({k[len("metadata["):-1]: v for k, v in params.items()
                                if k.startswith("metadata[")})
        return 200, dict(sub)

    def stripe_refund_list(self, query: Mapping[str, list[str]]) -> Answer:
        """``GET /v1/refunds``: newest first, by charge or payment intent, a page at a time."""
        params = {k: v[-1] for k, v in query.items()}
        with self.lock:
            found = [r for r in self._stripe_refunds
                     if all(r[f] == params[f] for f in ("charge", "payment_intent")
                            if f in params)]
        return _stripe_page(found, query, "/v1/refunds")

    # -- PayPal ------------------------------------------------------------------------------

    def paypal_refund(self, key: str | None, path: str, body: str) -> Answer:
        """``POST /v1/payments/sale/<id>/refund`` or ``/v2/payments/captures/<id>/refund``,
        under its PayPal-Request-Id: a repeat gets the first answer, whatever its body."""
        with self.lock:
            return self._once("paypal", key, None,
                              lambda: self._paypal_refund(key, path, body))

    def _paypal_refund(self, key: str | None, path: str, body: str) -> Answer:
        v2 = path.startswith("/v2/")
        payment_id = path.split("/")[-2]
        try:
            request = json.loads(body or "{}")
            amount = request.get("amount")
            value = None if amount is None else str(amount["value" if v2 else "total"])
            currency = "USD" if amount is None else normalize_currency(
                amount["currency_code" if v2 else "currency"])
        except (ValueError, KeyError, TypeError, AttributeError):
            return _paypal_refused(v2, "invalid")
        payment = self._find("paypal", payment_id, currency, value is not None)
        if payment is None:
            return _paypal_refused(v2, "not_found")
        try:
            refunded = payment.left if value is None else from_decimal_string(
                "paypal", value, currency).amount
        except (ValueError, ArithmeticError):
            refunded = 0
        if value is not None and (refunded <= 0 or currency != payment.currency):
            return _paypal_refused(v2, "invalid")
        refusal = self._refusal(payment_id, payment, refunded)
        if refusal is not None:
            return _paypal_refused(v2, refusal)
        self._book(payment_id, payment, refunded)
        return 201, self._paypal_refund_made(key, v2, payment_id,
                                             Money(refunded, payment.currency), request)

    def _paypal_refund_made(self, key: str | None, v2: bool, payment_id: str, money: Money,
                            request: Mapping[str, Any]) -> dict[str, Any]:
        refund_id = f"FAKE{len(self.refunds) + 1:013d}"
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        value = to_decimal_string("paypal", money)
        if v2:
            refund = {"id": refund_id, "status": "COMPLETED",
                      "amount": {"value": value, "currency_code": money.currency},
                      "custom_id": request.get("custom_id"),
                      "note_to_payer": request.get("note_to_payer"),
                      "links": [{"rel": "up", "method": "GET",
                                 "href": f"/v2/payments/captures/{payment_id}"}]}
        else:
            refund = {"id": refund_id, "state": "completed", "sale_id": payment_id,
                      "amount": {"total": value, "currency": money.currency},
                      "invoice_number": request.get("invoice_number", "")}
        refund |= {"create_time": now, "update_time": now}
        self.refunds[key or refund_id] = refund
        payment = self._payments[payment_id]
        self._movements.append(_Movement("paypal", payment.account, refund_id, payment_id,
                                         -money.amount, money.currency, int(time.time())))
        return refund


    # -- the reporting reads: what the reports and backfill list ------------------------------

    def stripe_balance_transactions(self, account: str | None, query: Mapping[str, list[str]]
                                    ) -> Answer:
        """``GET /v1/balance_transactions``: captures and refunds, newest first, ``source``
        expanded."""
        with self.lock:
            rows = [_balance_transaction(m) for m in self._movements
                    if m.provider == "stripe" and _visible(m.account, account)]
        return _stripe_page(rows, query, "/v1/balance_transactions")

    def stripe_events(self, account: str | None, query: Mapping[str, list[str]]) -> Answer:
        """``GET /v1/events``: the Stripe events observed, newest first."""
        with self.lock:
            rows = [e for p, a, e in self._events if p == "stripe" and _visible(a, account)]
        return _stripe_page(rows, query, "/v1/events")

    def paypal_transactions(self, account: str | None, query: Mapping[str, list[str]]
                            ) -> Answer:
        """``GET /v1/reporting/transactions``: captures and refunds between ``start_date`` and
        ``end_date`` (both inclusive, as PayPal's), a page at a time."""
        params = {k: v[-1] for k, v in query.items()}
        start, end = parse_time(params.get("start_date")), parse_time(params.get("end_date"))
        size, page = _int(params.get("page_size"), 100), _int(params.get("page"), 1)
        if start is None or end is None or not 1 <= size <= 500 or page < 1:
            return _paypal_invalid("start_date, end_date, page_size and page are required")
        with self.lock:
            rows = [_transaction_info(m) for m in self._movements
                    if m.provider == "paypal" and _visible(m.account, account)
                    and start.timestamp() <= m.created <= end.timestamp()]
        pages = max(1, -(-len(rows) // size))
        return 200, {"transaction_details": [{"transaction_info": r} for r in
                                             rows[(page - 1) * size:page * size]],
                     "page": page, "total_items": len(rows), "total_pages": pages, "links": []}

    def paypal_webhook_events(self, account: str | None, query: Mapping[str, list[str]]
                              ) -> Answer:
        """``GET /v1/notifications/webhooks-events``: the PayPal events observed between
        ``start_time`` and ``end_time``, newest first, on one page."""
        params = {k: v[-1] for k, v in query.items()}
        start, end = parse_time(params.get("start_time")), parse_time(params.get("end_time"))
        if start is None or end is None:
            return _paypal_invalid("start_time and end_time are required")
        with self.lock:
            rows = [e for p, a, e in reversed(self._events) if p == "paypal"
                    and _visible(a, account)
                    and start <= (parse_time(e.get("create_time")) or start) <= end]
        return 200, {"events": rows, "count": len(rows), "links": []}


def _visible(owner: str | None, account: str | None) -> bool:
    return owner is None or account is None or owner == account


def _int(value: str | None, default: int) -> int:
    return int(value) if value is not None and value.isdigit() else (
        default if value is None else -1)


def _stripe_page(rows: list[dict[str, Any]], query: Mapping[str, list[str]], url: str
                 ) -> Answer:
    """One page of a Stripe list, newest first: ``created[gte|gt|lte|lt]``, ``limit`` and
    ``starting_after`` as Stripe takes them."""
    params = {k: v[-1] for k, v in query.items()}
    limit = _int(params.get("limit"), 10)
    if not 1 <= limit <= 100:
        return _stripe_error(400, "parameter_invalid_integer", "This value must be between "
                             "1 and 100.", param="limit")
    bounds = {"gte": int.__ge__, "gt": int.__gt__, "lte": int.__le__, "lt": int.__lt__}
    for op, holds in bounds.items():
        value = params.get(f"created[{op}]")
        if value is not None:
            rows = [r for r in rows if holds(int(r["created"]), int(value))]
    rows = sorted(rows, key=lambda r: int(r["created"]), reverse=True)
    after = params.get("starting_after")
    if after is not None:
        ids = [r["id"] for r in rows]
        if after not in ids:
            return _stripe_refused("not_found", param="starting_after", id=after)
        rows = rows[ids.index(after) + 1:]
    return 200, {"object": "list", "data": rows[:limit], "has_more": len(rows) > limit,
                 "url": url}


def _balance_transaction(m: _Movement) -> dict[str, Any]:
    amount = to_provider_amount("stripe", Money(abs(m.amount), m.currency))
    signed = amount if m.amount > 0 else -amount
    kind = "charge" if m.amount > 0 else "refund"
    source: dict[str, Any] = {"id": m.source_id, "object": kind}
    if kind == "refund":
        source["charge"] = m.payment_id
    return {"id": f"txn_{m.source_id}", "object": "balance_transaction", "amount": signed,
            "available_on": m.created, "created": m.created, "currency": m.currency.lower(),
            "description": None, "fee": 0, "fee_details": [], "net": signed,
            "reporting_category": kind, "source": source, "status": "available", "type": kind}


def _transaction_info(m: _Movement) -> dict[str, Any]:
    value = to_decimal_string("paypal", Money(abs(m.amount), m.currency))
    at = datetime.fromtimestamp(m.created, UTC).strftime("%Y-%m-%dT%H:%M:%S+0000")
    info: dict[str, Any] = {
        "transaction_id": m.source_id,
        "transaction_event_code": "T0002" if m.amount > 0 else "T1107",
        "transaction_initiation_date": at, "transaction_updated_date": at,
        "transaction_amount": {"currency_code": m.currency,
                               "value": value if m.amount > 0 else f"-{value}"},
        "transaction_status": "S"}
    if m.amount < 0:
        info |= {"paypal_reference_id": m.payment_id, "paypal_reference_id_type": "TXN"}
    return info


def _paypal_invalid(issue: str) -> Answer:
    return 400, {"name": "INVALID_REQUEST", "message": "Request is not well-formed, syntactically "
                 "incorrect, or violates schema.", "debug_id": uuid.uuid4().hex[:13],
                 "details": [{"issue": "INVALID_PARAMETER_VALUE", "description": issue}]}


def _account(auth: str) -> str | None:
    """The account a call (its Authorization header) is made on: a Stripe API key, or the
    PayPal client id the fake's token was issued to."""
    if not auth.startswith("Bearer "):
        return None
    token = auth[len("Bearer "):].strip()
    return token.removeprefix(_PAYPAL_TOKEN) if token.startswith(_PAYPAL_TOKEN) else token


def _paypal_token(auth: str) -> str:
    """A token naming the client id of the Basic credentials it was asked with."""
    try:
        client_id = base64.b64decode(auth.removeprefix("Basic ")).decode().split(":", 1)[0]
    except (ValueError, UnicodeDecodeError):
        client_id = ""
    return f"{_PAYPAL_TOKEN}{client_id}"


def _stripe_error(status: int, code: str | None, message: str, *, param: str | None = None,
                  kind: str = "invalid_request_error") -> Answer:
    error = {"type": kind, "message": message}
    if code is not None:
        error["code"] = code
    if param is not None:
        error["param"] = param
    return status, {"error": error}


def _new_subscription(subscription_id: str) -> dict[str, Any]:
    return {"id": subscription_id, "object": "subscription", "status": "active",
            "cancel_at": None, "canceled_at": None, "metadata": {}}


def _no_such_subscription(subscription_id: str) -> Answer:
    return _stripe_error(404, "resource_missing", f"No such subscription: '{subscription_id}'",
                         param="id")


def _stripe_refused(why: str, *, param: str, **facts: Any) -> Answer:
    status, code, message = _STRIPE_REFUSALS[why]
    return _stripe_error(status, code, message.format(param=param, **facts), param=param)


def _paypal_error(name: str, message: str, issue: str) -> dict[str, Any]:
    return {"name": name, "message": message, "debug_id": uuid.uuid4().hex[:13],
            "details": [{"issue": issue}]}


def _paypal_refused(v2: bool, why: str) -> Answer:
    debug_id = uuid.uuid4().hex[:13]
    if not v2:
        status, name, message = _PAYPAL_V1[why]
        return status, {"name": name, "message": message, "debug_id": debug_id,
                        "information_link": "https://developer.paypal.com/docs/api/payments/"
                        f"v1/#error-{name}"}
    status, name, issue = _PAYPAL_V2[why]
    return status, {"name": name, "message": name.replace("_", " ").capitalize(),
                    "debug_id": debug_id, "details": [{"issue": issue}]}


def _shown(amount: int, currency: str) -> str:
    """An amount as Stripe's messages show it: ``$70.00``, or ``70.00 CHF``."""
    money = Money(amount, currency)
    symbol = _SYMBOLS.get(money.currency)
    return f"{symbol}{money.to_decimal()}" if symbol else f"{money.to_decimal()} {money.currency}"


def _handler(fake: FakeProviders) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

        def _answer(self, status: int, body: Any) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> str:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            fake.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
            return body

        def do_GET(self) -> None:
            self._record()
            url = urlsplit(self.path)
            query, account = parse_qs(url.query), _account(self.headers.get("Authorization") or "")
            reads = {"/v1/balance_transactions": fake.stripe_balance_transactions,
                     "/v1/events": fake.stripe_events,
                     "/v1/reporting/transactions": fake.paypal_transactions,
                     "/v1/notifications/webhooks-events": fake.paypal_webhook_events}
            if url.path == "/v1/refunds":
                self._answer(*fake.stripe_refund_list(query))
            elif match := _STRIPE_SUBSCRIPTION.fullmatch(url.path):
                self._answer(*fake.stripe_subscription("GET", None, match[1], {}))
            elif (match := _PAYPAL_SUBSCRIPTION.fullmatch(url.path)) and not match[2]:
                self._answer(*fake.paypal_subscription("GET", match[1]))
            elif url.path in reads:
                self._answer(*reads[url.path](account, query))
            else:
                self._answer(*_stripe_error(404, None, f"Unrecognized request URL (GET: "
                                                       f"{url.path})."))

        def do_POST(self) -> None:
            body = self._record()
            path = urlsplit(self.path).path
            key = self.headers.get("Idempotency-Key")
            if fake.refunds_down and path.endswith(("/refund", "/refunds")):
                self._answer(500, {"error": {"type": "api_error", "message": "down"},
                                   "name": "INTERNAL_SERVICE_ERROR"})
            elif path == "/v1/refunds":
                self._answer(*fake.stripe_refund(key, parse_qs(body, keep_blank_values=True)))
            elif path == "/v1/oauth2/token":
                token = _paypal_token(self.headers.get("Authorization") or "")
                self._answer(200, {"access_token": token, "token_type": "Bearer",
                                   "expires_in": 3600})
            elif _PAYPAL_REFUND.fullmatch(path):
                self._answer(*fake.paypal_refund(self.headers.get("PayPal-Request-Id"), path,
                                                 body))
            elif match := _STRIPE_SUBSCRIPTION.fullmatch(path):
                self._answer(*fake.stripe_subscription("POST", key, match[1], parse_qs(body)))
            elif match := re.fullmatch(r"/v1/customers/([^/]+)/balance_transactions", path):
                form = parse_qs(body)
                self._answer(200, {"id": f"cbtxn_{(key or uuid.uuid4().hex)[-12:]}",
                                   "object": "customer_balance_transaction",
                                   "customer": match[1], "amount": int(form["amount"][0]),
                                   "currency": form["currency"][0]})
            elif (match := _PAYPAL_SUBSCRIPTION.fullmatch(path)) and match[2]:
                self._answer(*fake.paypal_subscription("POST", match[1]))
            else:
                self._answer(404, {"error": "not found"})

        def do_DELETE(self) -> None:
            self._record()
            path = urlsplit(self.path).path
            if match := _STRIPE_SUBSCRIPTION.fullmatch(path):
                self._answer(*fake.stripe_subscription("DELETE", None, match[1], {}))
            else:
                self._answer(*_stripe_error(404, None, f"Unrecognized request URL (DELETE: "
                                                       f"{path})."))

    return Handler


def start(lenient: bool = False, port: int = 0) -> tuple[FakeProviders, ThreadingHTTPServer]:
    """The fake, serving on local ``port`` (0: a free one) until ``server.shutdown()``."""
    fake = FakeProviders(lenient=lenient)
    server = ThreadingHTTPServer(("127.0.0.1", port), _handler(fake))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return fake, server


def merchants_file_for(base_url: str, source: str) -> str:
    """The default merchants file with every provider API pointed at ``base_url``."""
    return re.sub(r"^(\[merchants\.[a-z]+\.(stripe|paypal)\])$",
                  rf'\1\napi_base = "{base_url}"', source, flags=re.M)
