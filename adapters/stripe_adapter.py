"""Stripe refunds and customer-balance credits through ``stripe.StripeClient``.

Every POST carries an explicit ``idempotency_key`` (our action id): stripe-python would otherwise
send a random key per call, and a retried job would refund twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import stripe

from adapters.base import (
    ErrorCode,
    PaymentTarget,
    ProviderResult,
    provider_call,
    provider_error,
    read_after_refusal,
)
from policy.money import Money, from_provider_amount, to_provider_amount
from service.config import STRIPE_API_VERSION, StripeSettings
from service.errors import ProviderError

PROVIDER = "stripe"
log = logging.getLogger(__name__)
# raw_status of a cancellation Stripe refused because the subscription was cancelled already.
ALREADY_CANCELED = "already_canceled"
# Subscription statuses that never bill again: a cancellation finds nothing left to do.
_ENDED = frozenset({"canceled", "incomplete_expired"})
# No telemetry: stripe-python would otherwise send this host's platform and request timings with
# each call, and keep an id for them in ~/.config/stripe/telemetry_id.
stripe.enable_telemetry = False

# Stripe error codes (https://docs.stripe.com/error-codes) onto ours; anything else from an
# InvalidRequestError is an invalid request, which a retry cannot fix.
_INVALID_REQUEST_CODES: Mapping[str, ErrorCode] = {
    "charge_already_refunded": ErrorCode.ALREADY_REFUNDED,
    "amount_too_large": ErrorCode.AMOUNT_TOO_LARGE,
    "refund_amount_too_large": ErrorCode.AMOUNT_TOO_LARGE,
    "charge_disputed": ErrorCode.DISPUTED,
    "resource_missing": ErrorCode.NOT_FOUND,
}


class StripeAdapter:
    def __init__(self, settings: StripeSettings, timeout: float = 20.0) -> None:
        self._client = stripe.StripeClient(
            settings.api_key,
            stripe_version=STRIPE_API_VERSION,
            base_addresses={"api": settings.api_base},
            max_network_retries=0,  # our executor retries, always with the same key
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    @provider_call(PROVIDER, "refund")
    def refund(self, target: PaymentTarget, amount: Money, reason: str, key: str,
               metadata: Mapping[str, str]) -> ProviderResult:
        """Refund ``amount`` of a charge or payment intent; idempotent on ``key``."""
        params: dict[str, Any] = {
            "amount": to_provider_amount(PROVIDER, amount),
            "reason": "requested_by_customer",
            "metadata": {**metadata, "action_id": key, "policy_reason": reason[:500]},
        }
        params["payment_intent" if target.kind == "payment_intent" else "charge"] = (
            target.provider_id)
        # stripe types params as a TypedDict; ours is built as a plain dict (the charge or the
        # payment intent key is chosen above).
        refund = _call(lambda: self._client.v1.refunds.create(
            params=params, options={"idempotency_key": key}))  # type: ignore[arg-type]
        return _result(refund)

    @provider_call(PROVIDER, "find_refund")
    def find_refund(self, target: PaymentTarget, key: str) -> ProviderResult | None:
        """The refund an earlier attempt with ``key`` created, if any (GETs, never a refund):
        every page of the charge's refunds is read, and only one carrying our key is taken."""
        field = "payment_intent" if target.kind == "payment_intent" else "charge"
        # A TypedDict key chosen at run time (charge or payment_intent): stripe's params type.
        listing = _call(lambda: self._client.v1.refunds.list(
            params={field: target.provider_id, "limit": 100}))  # type: ignore[arg-type]
        pages = listing.auto_paging_iter()
        while True:
            refund = _call(lambda: next(pages, None))
            if refund is None:
                return None
            metadata = refund.metadata.to_dict() if refund.metadata else {}
            if metadata.get("action_id") == key:
                return _result(refund)

    @provider_call(PROVIDER, "cancel_subscription")
    def cancel_subscription(self, subscription_id: str, at: datetime | None, reason: str,
                            key: str) -> ProviderResult:
        """End a subscription at ``at`` (Stripe's ``cancel_at``), or now when ``at`` is None.

        Setting ``cancel_at`` is a POST, idempotent on ``key``. Cancelling now is a DELETE,
        which takes no key (Stripe: a key "has no effect" on DELETE) and which Stripe refuses
        for a subscription already cancelled ("No such subscription"): by our earlier attempt
        whose answer was lost, by the ``cancel_at`` an attempt before the date set, or by
        anyone else. So a refusal is followed by a read, and a subscription Stripe shows
        cancelled (or ``incomplete_expired``, which never bills) counts as done
        (``raw_status`` ``already_canceled``).
        """
        try:
            if at is None:
                sub = _call(lambda: self._client.v1.subscriptions.cancel(subscription_id))
            else:
                sub = _call(lambda: self._client.v1.subscriptions.update(
                    subscription_id,
                    params={"cancel_at": int(at.timestamp()),
                            "metadata": {"action_id": key, "cancel_reason": reason[:450]}},
                    options={"idempotency_key": key}))
            raw_status = str(sub.status)
        except ProviderError as refused:
            if refused.code not in (ErrorCode.NOT_FOUND, ErrorCode.INVALID_REQUEST):
                raise
            sub, raw_status = self._cancelled(subscription_id, refused), ALREADY_CANCELED
        return ProviderResult(provider_ref=str(sub.id), status="succeeded",
                              amount=Money(0, "USD"), raw_status=raw_status)

    def _cancelled(self, subscription_id: str, refused: ProviderError) -> Any:
        """The subscription, if Stripe shows it cancelled; otherwise ``refused`` stands. A read
        that fails for a reason a retry can fix is raised instead: the attempt is retried."""
        sub = read_after_refusal(
            lambda: _call(lambda: self._client.v1.subscriptions.retrieve(subscription_id)),
            refused, f"stripe subscription {subscription_id}")
        if sub.status not in _ENDED:
            log.warning("stripe subscription %s is %s: its cancel was refused",
                        subscription_id, sub.status)
            raise refused
        log.info("stripe subscription %s has ended already (%s, canceled_at %s): counted as "
                 "done", subscription_id, sub.status, getattr(sub, "canceled_at", None))
        return sub

    @provider_call(PROVIDER, "credit_customer_balance")
    def credit_customer_balance(self, customer_id: str, amount: Money, description: str,
                                key: str) -> ProviderResult:
        """Credit a Stripe customer balance (a negative balance transaction), which Stripe
        applies to the customer's next invoices; idempotent on ``key``."""
        txn = _call(lambda: self._client.v1.customers.balance_transactions.create(
            customer_id,
            params={"amount": -to_provider_amount(PROVIDER, amount),
                    "currency": amount.currency.lower(), "description": description[:350],
                    "metadata": {"action_id": key}},
            options={"idempotency_key": key}))
        return ProviderResult(provider_ref=str(txn.id), status="succeeded", amount=amount,
                              raw_status="balance_transaction")


def _result(refund: Any) -> ProviderResult:
    status = str(refund.status or "pending")
    return ProviderResult(
        provider_ref=str(refund.id),
        status=status.lower(),
        amount=from_provider_amount(PROVIDER, int(refund.amount), str(refund.currency).upper()),
        raw_status=status,
        failure_reason=_text(getattr(refund, "failure_reason", None)),
    )


def _text(value: Any) -> str | None:
    return str(value) if value else None


def _call(fn: Any) -> Any:
    """Run a Stripe call, translating its errors into ours at this boundary."""
    try:
        return fn()
    except stripe.StripeError as exc:
        raise _translate(exc) from exc


def _translate(exc: stripe.StripeError) -> ProviderError:
    request_id = getattr(exc, "request_id", None)
    status = getattr(exc, "http_status", None)
    message = str(exc.user_message or exc)
    if isinstance(exc, stripe.RateLimitError):
        code = ErrorCode.RATE_LIMITED
    elif isinstance(exc, stripe.IdempotencyError):
        code = ErrorCode.IDEMPOTENCY_CONFLICT
    elif isinstance(exc, (stripe.AuthenticationError, stripe.PermissionError)):
        code = ErrorCode.AUTHENTICATION
    elif isinstance(exc, stripe.InvalidRequestError):
        code = _INVALID_REQUEST_CODES.get(str(exc.code or ""), ErrorCode.INVALID_REQUEST)
    elif isinstance(exc, (stripe.APIConnectionError, stripe.APIError)):
        code = ErrorCode.UNAVAILABLE  # the request may or may not have landed: same key again
    else:
        code = ErrorCode.INVALID_REQUEST
    return provider_error(PROVIDER, code, message, request_id=request_id, http_status=status)
