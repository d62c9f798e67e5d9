"""The Case: the plain, frozen facts a decision is made from (request, account, order, usage,
payment, uptime). Documented field by field in ``docs/case.md``.

Constructing a Case directly does not validate it (that keeps ``evaluate`` fast); build Cases from
untrusted input with ``policy.case_json.case_from_json``, which validates against the JSON schema
and normalises every datetime to UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from operator import attrgetter

from policy.money import Money


class RequestKind(StrEnum):
    REFUND = "refund"
    CANCELLATION = "cancellation"
    OVERPAYMENT = "overpayment"
    UPTIME_CREDIT = "uptime_credit"
    OVERDUE_INVOICE = "overdue_invoice"


class ReasonCode(StrEnum):
    """Why the customer asks, as classified by whoever built the Case (support or the worker)."""

    OTHER = "other"
    DISSATISFIED = "dissatisfied"
    PROVIDER_FAULT = "provider_fault"
    BILLING_ERROR = "billing_error"
    USER_ERROR = "user_error"
    CHANGED_REQUIREMENTS = "changed_requirements"
    USED_AFTER_COMPLETION = "used_after_completion"
    UNUSED_PORTION = "unused_portion"
    NON_USE = "non_use"
    FORGOT_AUTO_RENEW = "forgot_auto_renew"


class OrderType(StrEnum):
    NEW = "new"
    RENEWAL = "renewal"


class ServiceState(StrEnum):
    NOT_STARTED = "not_started"
    INITIATED = "initiated"
    COMPLETED = "completed"


class DisputeState(StrEnum):
    """A dispute on the payment (chargeback, PayPal case): open, or closed won or lost."""

    OPEN = "open"
    WON = "won"
    LOST = "lost"


class UptimeCause(StrEnum):
    NETWORK = "network"
    HARDWARE = "hardware"
    SOFTWARE = "software"
    MAINTENANCE = "maintenance"
    DENIAL_OF_SERVICE = "denial_of_service"
    OTHER = "other"


class UptimeSource(StrEnum):
    MERCHANT_MONITORING = "merchant_monitoring"
    THIRD_PARTY = "third_party"


@dataclass(frozen=True, slots=True)
class Identity:
    """Identity details the customer gave with the request; ``verified`` is the merchant's check."""

    username: str | None = None
    main_domain: str | None = None
    invoice_number: str | None = None
    date_of_birth: str | None = None
    order_number: str | None = None
    paypal_subscription_id: str | None = None
    client_name: str | None = None
    telephone: str | None = None
    contact_name: str | None = None
    address: str | None = None
    login_name: str | None = None
    verified: bool | None = None

    def has(self, key: str) -> bool:
        """True when the detail ``key`` was given and is not blank."""
        value = getattr(self, key)
        return isinstance(value, str) and value.strip() != ""


IDENTITY_KEYS: frozenset[str] = frozenset(f.name for f in fields(Identity)) - {"verified"}


@dataclass(frozen=True, slots=True)
class Request:
    kind: RequestKind
    received_at: datetime
    reason: str = ""
    reason_code: ReasonCode = ReasonCode.OTHER
    immediate: bool = False
    invoice_number: str | None = None
    identity: Identity = field(default_factory=Identity)


@dataclass(frozen=True, slots=True)
class Invoice:
    number: str
    amount: Money
    due_at: datetime
    paid: bool = False
    notified_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Account:
    prior_guarantee_refunds: int = 0
    suspended_for_breach: bool = False
    violations: int = 0
    invoices: tuple[Invoice, ...] = ()
    credit_balance: Money | None = None
    in_collection: bool = False


@dataclass(frozen=True, slots=True)
class Order:
    type: OrderType
    product_category: str
    ordered_at: datetime
    amount: Money
    term_months: int = 1
    auto_renew: bool = False
    next_billing_at: datetime | None = None
    payment_provider: str = ""
    payment_method: str = ""
    addons: tuple[str, ...] = ()
    service_state: ServiceState | None = None
    service_date: datetime | None = None
    # What is left to refund of the payment (captured less refunds done, in flight or pending),
    # and a dispute on it: the ledger's facts, so the bound a decision meets is cited in it.
    refundable: Money | None = None
    dispute: DisputeState | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    bandwidth_bytes: int = 0
    sessions: int = 0
    used_since_renewal: bool = False


@dataclass(frozen=True, slots=True)
class Payment:
    amount: Money
    received_at: datetime
    overpaid_amount: Money
    provider: str = ""
    via_subscription: bool = False
    refundable: Money | None = None
    dispute: DisputeState | None = None


@dataclass(frozen=True, slots=True)
class Uptime:
    measured_percent: Decimal
    incident_at: datetime
    cause: UptimeCause = UptimeCause.OTHER
    source: UptimeSource = UptimeSource.MERCHANT_MONITORING


@dataclass(frozen=True, slots=True)
class Case:
    request: Request
    account: Account = field(default_factory=Account)
    order: Order | None = None
    usage: Usage | None = None
    payment: Payment | None = None
    uptime: Uptime | None = None
    # The merchant's calendar (an IANA name): every calendar-day window, the day-of-month
    # deadline and date-only due dates are read in it. Datetimes above are UTC instants.
    time_zone: str = "UTC"

    def invoice(self, number: str | None) -> Invoice | None:
        """The first invoice on the account numbered ``number``, if any."""
        for invoice in self.account.invoices:
            if invoice.number == number:
                return invoice
        return None

    def due_invoices(self, now: datetime) -> tuple[Invoice, ...]:
        """Unpaid invoices whose due date has arrived by ``now`` (due or overdue)."""
        return tuple([i for i in self.account.invoices if not i.paid and i.due_at <= now])

    def last_invoice_numbers(self, count: int) -> tuple[str, ...]:
        """The numbers of the ``count`` latest invoices by due date, newest first."""
        latest = sorted(self.account.invoices, key=_due_at, reverse=True)
        return tuple([i.number for i in latest[:count]])


_due_at = attrgetter("due_at")  # a C-level sort key
