"""PayPal refunds: a v1 sale (subscription payments) or a v2 capture, by the payment's kind.

Every refund carries ``PayPal-Request-Id`` equal to our action id, so a retry returns the refund
the first attempt made instead of making another. Amounts are decimal strings in PayPal's own
exponent (``"12.34"``, ``"1000"`` for JPY).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from paypalrestsdk import exceptions as sdk_errors

from adapters.base import (
    ErrorCode,
    PaymentTarget,
    ProviderResult,
    provider_call,
    provider_error,
    read_after_refusal,
)
from adapters.paypal_client import PayPalClient
from policy.money import Money, from_decimal_string, to_decimal_string
from service.config import PayPalSettings
from service.errors import ProviderError

PROVIDER = "paypal"
log = logging.getLogger(__name__)

# PayPal's error names (v1 ``name``, v2 ``details[].issue``) onto ours.
_NAMES: Mapping[str, ErrorCode] = {
    "TRANSACTION_ALREADY_REFUNDED": ErrorCode.ALREADY_REFUNDED,
    "CAPTURE_FULLY_REFUNDED": ErrorCode.ALREADY_REFUNDED,
    "FULL_REFUND_NOT_ALLOWED_AFTER_PARTIAL_REFUND": ErrorCode.AMOUNT_TOO_LARGE,
    "REFUND_EXCEEDED_TRANSACTION_AMOUNT": ErrorCode.AMOUNT_TOO_LARGE,
    "REFUND_AMOUNT_EXCEEDED": ErrorCode.AMOUNT_TOO_LARGE,
    "REFUND_TIME_LIMIT_EXCEEDED": ErrorCode.REFUND_TIME_LIMIT,
    "TRANSACTION_REFUSED": ErrorCode.TRANSACTION_REFUSED,
    "REFUND_NOT_ALLOWED": ErrorCode.TRANSACTION_REFUSED,
    "TRANSACTION_DISPUTED": ErrorCode.DISPUTED,
    "CAPTURE_DISPUTED_PARTIAL_REFUND_NOT_ALLOWED": ErrorCode.DISPUTED,
    "INVALID_RESOURCE_ID": ErrorCode.NOT_FOUND,
    "RESOURCE_NOT_FOUND": ErrorCode.NOT_FOUND,
    "DUPLICATE_REQUEST_ID": ErrorCode.IDEMPOTENCY_CONFLICT,
    "RATE_LIMIT_REACHED": ErrorCode.RATE_LIMITED,
    "INTERNAL_SERVICE_ERROR": ErrorCode.UNAVAILABLE,
    "SUBSCRIPTION_STATUS_INVALID": ErrorCode.INVALID_REQUEST,
}


# Subscription statuses PayPal will not cancel from because the subscription has ended, and
# those it cancels from.
_ENDED = frozenset({"CANCELLED", "EXPIRED"})
_CANCELLABLE = frozenset({"ACTIVE", "SUSPENDED"})


class PayPalAdapter:
    def __init__(self, settings: PayPalSettings, timeout: float = 20.0) -> None:
        self._api = PayPalClient(settings, timeout=timeout)

    @provider_call(PROVIDER, "refund")
    def refund(self, target: PaymentTarget, amount: Money, reason: str, key: str,
               metadata: Mapping[str, str]) -> ProviderResult:
        """Refund ``amount`` of a sale or capture; idempotent on ``key``."""
        value = to_decimal_string(PROVIDER, amount)
        if target.kind == "sale":
            path = f"v1/payments/sale/{target.provider_id}/refund"
            body: dict[str, Any] = {"amount": {"total": value, "currency": amount.currency},
                                    "invoice_number": key, "description": reason[:255]}
        else:
            path = f"v2/payments/captures/{target.provider_id}/refund"
            body = {"amount": {"value": value, "currency_code": amount.currency},
                    "custom_id": key, "note_to_payer": reason[:255]}
        headers = {"PayPal-Request-Id": key, "Prefer": "return=representation"}
        answer = _call(lambda: self._api.post(path, body, headers))
        return _result(answer, amount.currency)

    @provider_call(PROVIDER, "cancel_subscription")
    def cancel_subscription(self, subscription_id: str, at: datetime | None, reason: str,
                            key: str) -> ProviderResult:
        """Cancel now (PayPal has no cancel-at date: the executor calls this when it is due).

        PayPal refuses to cancel a subscription that is not active or suspended
        (``SUBSCRIPTION_STATUS_INVALID``): one cancelled already (by our attempt whose answer
        was lost, or by anyone else) or expired counts as done once read back; one not yet
        active (``APPROVAL_PENDING``, ``APPROVED``) may still start billing, so the refusal
        stands. A read PayPal cannot answer, or one showing the subscription active or
        suspended after all (PayPal contradicting itself), leaves the attempt to be retried.
        """
        path = f"v1/billing/subscriptions/{subscription_id}/cancel"
        try:
            _call(lambda: self._api.post(path, {"reason": reason[:128] or "cancelled"},
                                         {"PayPal-Request-Id": key}))
            raw_status = "CANCELLED"
        except ProviderError as refused:
            if "SUBSCRIPTION_STATUS_INVALID" not in refused.names:
                raise
            raw_status = self._ended(subscription_id, refused)
        return ProviderResult(provider_ref=subscription_id, status="succeeded",
                              amount=Money(0, "USD"), raw_status=raw_status)

    def _ended(self, subscription_id: str, refused: ProviderError) -> str:
        """The status PayPal shows if the subscription has ended; otherwise ``refused``
        stands."""
        shown = read_after_refusal(
            lambda: _call(lambda: self._api.get(f"v1/billing/subscriptions/{subscription_id}")),
            refused, f"paypal subscription {subscription_id}")
        status = str(shown.get("status") or "")
        if status in _CANCELLABLE:  # PayPal contradicts itself (a change under way): again
            raise provider_error(PROVIDER, ErrorCode.UNAVAILABLE, f"cancel refused "
                                 f"(SUBSCRIPTION_STATUS_INVALID) for a subscription PayPal "
                                 f"shows {status}")
        if status not in _ENDED:
            log.warning("paypal subscription %s is %s: its cancel was refused",
                        subscription_id, status or "of no status")
            raise refused
        return f"already_{status.lower()}"

    def find_refund(self, target: PaymentTarget, key: str) -> ProviderResult | None:
        """PayPal lists no refunds by our key; a repeat with the same PayPal-Request-Id is the
        documented way to learn what the first attempt did, so there is nothing to look up."""
        return None


def _result(answer: Mapping[str, Any], currency: str) -> ProviderResult:
    amount = answer.get("amount") or {}
    value = amount.get("value", amount.get("total"))
    code = amount.get("currency_code", amount.get("currency", currency))
    status = str(answer.get("status") or answer.get("state") or "pending")
    return ProviderResult(
        provider_ref=str(answer["id"]),
        status=status.lower(),
        amount=from_decimal_string(PROVIDER, str(value), str(code)),
        raw_status=status,
        failure_reason=_failure_reason(answer),
    )


def _failure_reason(answer: Mapping[str, Any]) -> str | None:
    details = answer.get("status_details")
    reason = details.get("reason") if isinstance(details, Mapping) else None
    return str(reason) if reason else None


def _call(fn: Callable[..., Any]) -> Mapping[str, Any]:
    """Run a PayPal call, translating errors into ours at this boundary."""
    try:
        answer: Mapping[str, Any] = fn()
    except sdk_errors.ConnectionError as exc:
        raise _translate_http(exc) from exc
    except (OSError, ValueError) as exc:  # requests' network errors are OSErrors
        raise provider_error(PROVIDER, ErrorCode.UNAVAILABLE, f"{type(exc).__name__}: {exc}"
                             ) from exc
    if isinstance(answer, dict) and "error" in answer:  # the SDK returns 400s as {"error": ...}
        error = answer["error"]  # PayPal's body, whatever JSON it was
        raise _translate_body(error if isinstance(error, dict) else {}, 400)
    return answer


def _translate_http(exc: sdk_errors.ConnectionError) -> ProviderError:
    status = getattr(getattr(exc, "response", None), "status_code", None)
    try:
        body = json.loads(exc.content or "{}")
    except ValueError:
        body = {}
    if status == 429:
        return provider_error(PROVIDER, ErrorCode.RATE_LIMITED, "rate limited", http_status=429)
    if status is None or status >= 500:
        return provider_error(PROVIDER, ErrorCode.UNAVAILABLE, f"HTTP {status}",
                              http_status=status)
    if status in (401, 403):
        return provider_error(PROVIDER, ErrorCode.AUTHENTICATION, f"HTTP {status}",
                              http_status=status)
    return _translate_body(body if isinstance(body, dict) else {}, status)


def _translate_body(body: Mapping[str, Any], status: int | None) -> ProviderError:
    names = [str(body.get("name", ""))]
    names += [str(d.get("issue", "")) for d in body.get("details") or [] if isinstance(d, dict)]
    code = next((_NAMES[n] for n in reversed(names) if n in _NAMES), ErrorCode.INVALID_REQUEST)
    message = f"{' / '.join(n for n in names if n)}: {body.get('message', '')}".strip()
    return provider_error(PROVIDER, code, message, request_id=body.get("debug_id"),
                          http_status=status, names=tuple(n for n in names if n))
