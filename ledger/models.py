"""The ledger schema: the inbox, what the providers told us, and what we decided and did.

Provider objects (customers, subscriptions, invoices, payments, refunds, disputes) refer to each
other by the provider's own id (``*_ref`` columns), not by foreign key: events arrive in any order,
so an invoice may land before the subscription it belongs to. Each provider object carries the
version of the last event applied to it (provider timestamp, state rank, event id); an older
version never overwrites a newer one, so duplicates and shuffled deliveries converge.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python, naive UTC in the database (SQLite has no time zones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger; use UTC-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Provider(StrEnum):
    STRIPE = "stripe"
    PAYPAL = "paypal"


class InboxStatus(StrEnum):
    PENDING = "pending"  # stored and acknowledged, waiting for a worker
    PROCESSED = "processed"  # applied to the ledger
    IGNORED = "ignored"  # stored but never acted on (unknown type, wrong livemode)
    RETRY = "retry"  # failed; tried again at next_attempt_at
    DEAD = "dead"  # failed too often; waits for `gateway replay`


class InboxEvent(Base):
    """A verified webhook delivery, stored before it is acknowledged."""

    __tablename__ = "inbox_events"
    __table_args__ = (
        UniqueConstraint("merchant", "provider", "event_id", name="uq_inbox_event"),
        # PayPal signs a CRC32 of the body, which anyone can match with a different body: a
        # transmission is bound to the first event it carried, and may never carry another.
        UniqueConstraint("merchant", "provider", "transmission_id", name="uq_inbox_transmission"),
        Index("ix_inbox_status_received", "status", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    merchant: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(128))
    object_ref: Mapped[str | None] = mapped_column(String(255))
    partition: Mapped[int] = mapped_column(Integer)
    livemode: Mapped[bool] = mapped_column(Boolean)
    provider_created_at: Mapped[datetime | None]
    raw_body: Mapped[bytes] = mapped_column(LargeBinary)
    headers: Mapped[dict[str, Any]]
    transmission_id: Mapped[str | None] = mapped_column(String(255))  # PayPal's; Stripe: None
    received_at: Mapped[datetime]
    deliveries: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default=InboxStatus.PENDING)
    status_reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_traceback: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None]


class _ProviderObject:
    """Columns every provider object shares: identity and the version last applied."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str] = mapped_column(String(255))
    version_at: Mapped[datetime]
    version_rank: Mapped[int] = mapped_column(BigInteger, default=0)
    version_event: Mapped[str] = mapped_column(String(255))
    livemode: Mapped[bool] = mapped_column(Boolean, default=False)

    if TYPE_CHECKING:
        # The declarative constructor of the models this is mixed into: columns as keywords.
        def __init__(self, **kw: Any) -> None: ...


def _unique(table: str) -> tuple[UniqueConstraint]:
    return (UniqueConstraint("merchant", "provider", "provider_id", name=f"uq_{table}_ref"),)


class Customer(_ProviderObject, Base):
    __tablename__ = "customers"
    __table_args__ = _unique("customers")

    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(255))


class Subscription(_ProviderObject, Base):
    __tablename__ = "subscriptions"
    __table_args__ = _unique("subscriptions")

    customer_ref: Mapped[str | None] = mapped_column(String(255))
    plan_ref: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    interval: Mapped[str | None] = mapped_column(String(16))
    interval_count: Mapped[int | None] = mapped_column(Integer)
    current_period_start: Mapped[datetime | None]
    current_period_end: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    next_billing_at: Mapped[datetime | None]
    failed_payments: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None]


class Invoice(_ProviderObject, Base):
    __tablename__ = "invoices"
    __table_args__ = (*_unique("invoices"),
                      Index("ix_invoice_customer", "merchant", "customer_ref"))

    customer_ref: Mapped[str | None] = mapped_column(String(255))
    subscription_ref: Mapped[str | None] = mapped_column(String(255))
    number: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32))
    billing_reason: Mapped[str | None] = mapped_column(String(64))
    amount_due: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    due_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)


class Payment(_ProviderObject, Base):
    """A Stripe charge, a PayPal v1 sale or a PayPal v2 capture."""

    __tablename__ = "payments"
    __table_args__ = (*_unique("payments"), Index("ix_payment_invoice", "merchant", "invoice_ref"),
                      Index("ix_payment_subscription", "merchant", "subscription_ref"))

    kind: Mapped[str] = mapped_column(String(16))  # charge | sale | capture
    customer_ref: Mapped[str | None] = mapped_column(String(255))
    subscription_ref: Mapped[str | None] = mapped_column(String(255))
    invoice_ref: Mapped[str | None] = mapped_column(String(255))
    payment_intent_ref: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    payment_method: Mapped[str | None] = mapped_column(String(64))
    paid_at: Mapped[datetime | None]


class Refund(_ProviderObject, Base):
    __tablename__ = "refunds"
    __table_args__ = (*_unique("refunds"), Index("ix_refund_payment", "merchant", "payment_ref"))

    payment_ref: Mapped[str | None] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16), default="refund")  # refund | reversal
    status: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(255))
    failure_reason: Mapped[str | None] = mapped_column(String(255))
    refunded_at: Mapped[datetime | None]
    # The action of ours that asked for it (metadata.action_id), or None: made elsewhere.
    action_id: Mapped[str | None] = mapped_column(String(64))
    # True when the provider reported a refund no decision of ours asked for (a dashboard
    # refund, say): recorded all the same, and flagged for the reconciliation report.
    unsolicited: Mapped[bool] = mapped_column(Boolean, default=False)


class DisputeState(StrEnum):
    """Where a dispute stands, whatever the provider calls it."""

    OPEN = "open"  # the customer's bank or PayPal is deciding: the money may go back that way
    WON = "won"  # closed in the merchant's favour: the payment stands
    LOST = "lost"  # closed for the customer: the funds already went back


class Dispute(_ProviderObject, Base):
    __tablename__ = "disputes"
    __table_args__ = (*_unique("disputes"), Index("ix_dispute_payment", "merchant", "payment_ref"))

    payment_ref: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))  # the provider's own word
    state: Mapped[str] = mapped_column(String(8), default=DisputeState.OPEN,
                                       server_default=DisputeState.OPEN.value)
    reason: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    opened_at: Mapped[datetime | None]


class Decision(Base):
    """A policy Decision as evaluated: the case, the pack, the time and the cited outcome."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decision_account", "merchant", "account_ref"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant: Mapped[str] = mapped_column(String(64))
    account_ref: Mapped[str | None] = mapped_column(String(255))
    payment_ref: Mapped[str | None] = mapped_column(String(255))  # the payment it concerns
    pack: Mapped[str] = mapped_column(String(64))
    request_kind: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    case: Mapped[dict[str, Any]]
    decision: Mapped[dict[str, Any]]
    evaluated_at: Mapped[datetime]
    source_event_id: Mapped[int | None] = mapped_column(ForeignKey("inbox_events.id"))
    source_request_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(32), default="recorded")
    status_reason: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str | None] = mapped_column(String(255))
    reviewed_at: Mapped[datetime | None]
    review_note: Mapped[str | None] = mapped_column(Text)


class DecisionStatus(StrEnum):
    RECORDED = "recorded"  # decided; its actions (if any) not yet all carried out
    EXECUTED = "executed"  # every action done (refunds accepted or settled, credits granted)
    NEEDS_REVIEW = "needs_review"  # a person decides (the policy said so, or an action failed)
    CLOSED = "closed"  # nothing to carry out (a denial, say)


class ActionStatus(StrEnum):
    PENDING = "pending"  # committed with its decision; not tried yet, or waiting for a retry
    EXECUTING = "executing"  # an attempt started; a crash here is resumed with the same key
    SUBMITTED = "submitted"  # the provider accepted it; its webhook will confirm
    SUCCEEDED = "succeeded"  # done and confirmed
    FAILED = "failed"  # refused or failed for good; the decision is reopened for review


class Action(Base):
    """One side effect of a Decision. Its id is the idempotency key sent to the provider."""

    __tablename__ = "actions"
    __table_args__ = (Index("ix_action_status", "status", "next_attempt_at"),
                      Index("ix_action_decision", "decision_id"),
                      Index("ix_action_provider_ref", "provider_ref"),
                      Index("ix_action_payment", "merchant", "payment_ref"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"))
    merchant: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # refund | credit
    # Never loaded (decision_id is what the code reads): declared so that a flush inserts a
    # new decision before its actions, without a flush of its own in between.
    decision: Mapped[Decision] = relationship(lazy="raise")
    provider: Mapped[str | None] = mapped_column(String(16))
    # charge | payment_intent | sale | capture
    target_kind: Mapped[str | None] = mapped_column(String(16))
    payment_ref: Mapped[str | None] = mapped_column(String(255))
    account_ref: Mapped[str | None] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    clause: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(32), default=ActionStatus.PENDING)
    provider_ref: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    failure_code: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AccountCredit(Base):
    """A signed entry in an account's credit balance (grants positive, uses negative).

    A use names the grant it draws on (``applies_to``) and the invoice or payment it is applied
    to (``applied_to``), once; a use carried out by a refund of that payment names the refund
    action, and stops counting if the action fails. A grant says who holds it: ``ledger`` (used
    against the account's next payments) or ``stripe_balance`` (Stripe applies it to the next
    invoice; the invoice's balance fields tell us)."""

    __tablename__ = "account_credits"
    __table_args__ = (Index("ix_credit_account", "merchant", "account_ref", "currency"),
                      UniqueConstraint("applies_to", "applied_to", name="uq_credit_application"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant: Mapped[str] = mapped_column(String(64))
    account_ref: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(Text)
    clause: Mapped[str | None] = mapped_column(String(64))
    decision_id: Mapped[str | None] = mapped_column(ForeignKey("decisions.id"))
    action_id: Mapped[str | None] = mapped_column(ForeignKey("actions.id"), unique=True)
    created_at: Mapped[datetime]
    held_by: Mapped[str] = mapped_column(String(16), default="ledger", server_default="ledger")
    applies_to: Mapped[int | None] = mapped_column(
        ForeignKey("account_credits.id", name="fk_credit_applies_to"))
    applied_to: Mapped[str | None] = mapped_column(String(255))


class RequestStatus(StrEnum):
    RECEIVED = "received"  # stored; the worker has not decided it yet
    DECIDED = "decided"  # a Decision was recorded (see decision_id)
    FAILED = "failed"  # could not be decided (a missing payment, say); ``error`` says why


class SupportRequest(Base):
    """A request filed by support staff for a customer: a refund, cancellation or uptime claim."""

    __tablename__ = "support_requests"
    __table_args__ = (Index("ix_request_merchant", "merchant", "created_at"),
                      Index("ix_request_payment", "merchant", "payment_ref"))

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    merchant: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    account_ref: Mapped[str] = mapped_column(String(255))
    payment_ref: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default=RequestStatus.RECEIVED)
    error: Mapped[str | None] = mapped_column(Text)
    decision_id: Mapped[str | None] = mapped_column(ForeignKey("decisions.id"))
    filed_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    decided_at: Mapped[datetime | None]


class IdempotencyKey(Base):
    """An admin request made with an ``Idempotency-Key``: the answer it got, kept so that the
    same key with the same body gets the same answer, however often it is sent."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("merchant", "key", name="uq_idempotency_key"),
                      Index("ix_idempotency_created", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of method, path and body
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class UsageReport(Base):
    """Usage the merchant reports for an account (002's bandwidth and session limits)."""

    __tablename__ = "usage_reports"
    __table_args__ = (Index("ix_usage_account", "merchant", "account_ref", "reported_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant: Mapped[str] = mapped_column(String(64))
    account_ref: Mapped[str] = mapped_column(String(255))
    bandwidth_bytes: Mapped[int] = mapped_column(BigInteger)
    sessions: Mapped[int] = mapped_column(Integer)
    last_used_at: Mapped[datetime | None]
    reported_at: Mapped[datetime]


class AuditEntry(Base):
    """Every state change, who made it and what it was: append-only."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_subject", "merchant", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime]
    merchant: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict[str, Any]]




class StagedProviderRecord(Base):
    """Provider records of one reconciliation run, staged so the database does the matching.

    A million records do not fit comfortably in a worker's memory as Python objects, and the
    database already holds the ledger side: staging and joining there keeps memory bounded.
    Rows are deleted when their run ends.
    """

    __tablename__ = "staged_provider_records"
    __table_args__ = (Index("ix_staged_run_ref", "run_id", "provider", "provider_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str] = mapped_column(String(255))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime]
    related_id: Mapped[str | None] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(String(32))
