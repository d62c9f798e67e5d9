"""What the clock's scheduled jobs keep: account standing, overdue assessments and the outbox.

Kept apart from ``ledger.models`` so the provider objects stay exactly what the providers told
us: an invoice's assessment (overdue, late fee, the decision behind it) lives beside the invoice,
keyed by the same merchant, provider and provider id, and never overwrites a snapshot.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.models import Base


class Account(Base):
    """A customer account's standing with the merchant, beyond what the providers report."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("merchant", "account_ref", name="uq_account_ref"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant: Mapped[str] = mapped_column(String(64))
    account_ref: Mapped[str] = mapped_column(String(255))
    # 003 §1.4: no support while a bill is overdue.
    support_withheld: Mapped[bool] = mapped_column(Boolean, default=False,
                                                   server_default=false())
    suspended_for_breach: Mapped[bool] = mapped_column(Boolean, default=False,
                                                       server_default=false())
    violations: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    updated_at: Mapped[datetime]


class InvoiceAssessment(Base):
    """One overdue assessment per invoice: whether it is overdue, its late fee, the decision."""

    __tablename__ = "invoice_assessments"
    __table_args__ = (
        UniqueConstraint("merchant", "provider", "invoice_ref", name="uq_invoice_assessment"),
        Index("ix_assessment_account", "merchant", "account_ref"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(16))
    invoice_ref: Mapped[str] = mapped_column(String(255))
    account_ref: Mapped[str] = mapped_column(String(255))
    overdue: Mapped[bool] = mapped_column(Boolean)
    late_fee: Mapped[int | None] = mapped_column(BigInteger)  # minor units; None: no fee
    late_fee_currency: Mapped[str | None] = mapped_column(String(3))
    decision_id: Mapped[str] = mapped_column(ForeignKey("decisions.id"))
    assessed_at: Mapped[datetime]
    # When the invoice stopped being owed (paid or voided) after it was assessed overdue.
    resolved_at: Mapped[datetime | None]


class NoticeKind(StrEnum):
    AUTO_RENEWAL_REMINDER = "auto_renewal_reminder"  # 002 billing.2
    CHARGE_NOTICE = "charge_notice"  # 003 §1.14b
    CANCELLATION_CONFIRMATION = "cancellation_confirmation"  # 000 §3


class Notice(Base):
    """A message to a customer, due at ``send_at``: one per merchant, kind and subject."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("merchant", "kind", "subject_ref", name="uq_outbox_subject"),
        Index("ix_outbox_due", "sent_at", "send_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    merchant: Mapped[str] = mapped_column(String(64))
    account_ref: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(48))
    subject_ref: Mapped[str] = mapped_column(String(255))
    send_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    channel: Mapped[str | None] = mapped_column(String(16))  # how it went out: log | smtp
    body: Mapped[dict[str, Any]]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    # Set when the notice stopped being true before it was sent (renewal turned off, paid).
    withdrawn_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
