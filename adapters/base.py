"""What every adapter speaks: the payment to refund, the result, and the error codes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from ledger.refundable import GONE
from policy.money import Money
from service import metrics
from service.errors import ProviderError


class ErrorCode(StrEnum):
    """Why a provider call failed; ``RETRYABLE`` says which a later attempt can fix."""

    ALREADY_REFUNDED = "already_refunded"
    AMOUNT_TOO_LARGE = "amount_too_large"
    DISPUTED = "disputed"
    REFUND_TIME_LIMIT = "refund_time_limit"
    TRANSACTION_REFUSED = "transaction_refused"
    NOT_FOUND = "not_found"
    INVALID_REQUEST = "invalid_request"
    IDEMPOTENCY_CONFLICT = "idempotency_conflict"
    AUTHENTICATION = "authentication"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"


RETRYABLE = frozenset({ErrorCode.RATE_LIMITED, ErrorCode.UNAVAILABLE})

log = logging.getLogger(__name__)
T = TypeVar("T")


@contextmanager
def provider_call(provider: str, operation: str) -> Iterator[None]:
    """Time one provider operation and count its failure by our error code.

    Used as a decorator on each adapter method, around the translation of the provider's errors,
    so the code counted is ours (``unavailable``, ``already_refunded``, ...), never the SDK's.
    """
    start = time.perf_counter()
    try:
        yield
    except ProviderError as exc:
        metrics.PROVIDER_CALL_ERRORS.labels(provider, operation, exc.code).inc()
        raise
    except Exception:
        metrics.PROVIDER_CALL_ERRORS.labels(provider, operation, "unexpected").inc()
        raise
    finally:
        metrics.PROVIDER_CALL_SECONDS.labels(provider, operation).observe(
            time.perf_counter() - start)


def provider_error(provider: str, code: ErrorCode, message: str, *,
                   request_id: str | None = None, http_status: int | None = None,
                   names: tuple[str, ...] = ()) -> ProviderError:
    return ProviderError(f"{provider}: {message}", provider=provider, code=code.value,
                         retryable=code in RETRYABLE, request_id=request_id,
                         http_status=http_status, names=names)


def read_after_refusal(read: Callable[[], T], refused: ProviderError, what: str) -> T:
    """``read()``: what a refused call was about, to learn whether it is done already. A read
    that fails for a reason a retry can fix is raised (the attempt is retried); any other
    failure is logged and leaves ``refused`` standing."""
    try:
        return read()
    except ProviderError as unread:
        if unread.retryable:
            raise
        log.warning("%s could not be read after a refused call: %s", what, unread)
        raise refused from None


@dataclass(frozen=True, slots=True)
class PaymentTarget:
    """The provider object to refund: a Stripe charge or payment intent, a PayPal sale or
    capture."""

    provider: str
    kind: str  # charge | payment_intent | sale | capture
    provider_id: str


@dataclass(frozen=True, slots=True)
class ProviderResult:
    """What the provider made of a money movement: a refund, or a customer-balance credit."""

    provider_ref: str  # the provider's id for it (re_..., a PayPal refund id, cbtxn_...)
    status: str  # the provider's status, lower-cased (pending, succeeded, completed, failed)
    amount: Money
    raw_status: str = field(default="")
    failure_reason: str | None = None  # why a refund failed, as the provider says it

    @property
    def settled(self) -> bool:
        return self.status in ("succeeded", "completed")

    @property
    def failed(self) -> bool:
        return self.status in GONE
