"""Jobs the clock runs besides the sweeper: overdue invoices, the notices outbox, and the
retention of admin requests' idempotency keys.

``mark_overdue`` assesses every open invoice whose due date is past the pack's grace period
(003 §1.6: 24 hours) once: it builds an ``overdue_invoice`` Case, records the policy's Decision
(late fee, 003 §1.5) and the assessment in one transaction, and withholds support from the
account (003 §1.4) until no invoice of it is overdue any more. ``run_scheduled`` runs it and the
notice jobs, each on its own so that one failing does not stop the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway import idempotency
from ledger import audit
from ledger.models import Invoice
from ledger.schedule_models import Account, InvoiceAssessment, Notice, NoticeKind
from policy import PolicyError
from policy.pack import LateFeeTerms
from service import metrics
from service.bootstrap import Container
from service.logs import log_context
from workers.cases import account_flags as account_flags  # re-exported
from workers.cases import account_part, iso
from workers.decide import decide_in
from workers.notices import deliver_due, schedule_notices

log = logging.getLogger(__name__)
ACTOR = "clock"
UNPAID = ("open", "uncollectible")  # still owed; paid and void are not
BATCH = 500


def run_scheduled(container: Container, now: datetime | None = None) -> None:
    """Run every scheduled job once; an exception in one is logged and the next still runs."""
    now = now or datetime.now(UTC)
    jobs: tuple[Callable[[Container, datetime], Any], ...] = (
        mark_overdue, schedule_notices, deliver_due, forget_idempotency_keys)
    for job in jobs:
        try:
            job(container, now)
        except Exception:  # the clock must outlive one job's failure (database, SMTP, a bug)
            metrics.JOB_FAILURES.labels(job.__name__).inc()
            log.exception("scheduled job %s failed; the next run tries again", job.__name__)


def forget_idempotency_keys(container: Container, now: datetime) -> int:
    """Admin requests' idempotency keys older than ``idempotency.KEEP`` (72 hours)."""
    with container.sessions() as session, session.begin():
        return idempotency.forget_old(session, now)


# -- overdue invoices ------------------------------------------------------------------------------


def mark_overdue(container: Container, now: datetime | None = None) -> int:
    """Assess newly overdue invoices and restore support where nothing is overdue any more.

    Returns how many invoices were assessed.
    """
    now = now or datetime.now(UTC)
    assessed = 0
    for name, merchant in container.settings.merchants.items():
        terms = container.policy_pack(merchant.policy_pack).late_fee
        if terms is None:  # no late-fee family: the merchant's policy says nothing of overdue bills
            continue
        with log_context(merchant=name):
            for invoice_id in _candidates(container, name, terms, now):
                assessed += _assess(container, name, invoice_id, terms, now)
    restore_support(container, now)
    return assessed


def _candidates(container: Container, merchant: str, terms: LateFeeTerms, now: datetime
                ) -> list[int]:
    """Open invoices past due plus grace, not yet assessed. The due date is the Case's own
    (``workers.cases``): the invoice's due date, else its period end."""
    due = func.coalesce(Invoice.due_at, Invoice.period_end, Invoice.version_at)
    assessed = select(InvoiceAssessment.id).where(
        InvoiceAssessment.merchant == Invoice.merchant,
        InvoiceAssessment.provider == Invoice.provider,
        InvoiceAssessment.invoice_ref == Invoice.provider_id)
    with container.sessions() as session:
        return list(session.scalars(select(Invoice.id).where(
            Invoice.merchant == merchant, Invoice.status == "open",
            Invoice.number.is_not(None), Invoice.customer_ref.is_not(None),
            due <= now - terms.grace, ~assessed.exists()).order_by(Invoice.id).limit(BATCH)))


def _assess(container: Container, merchant: str, invoice_id: int, terms: LateFeeTerms,
            now: datetime) -> int:
    try:
        with container.sessions() as session, session.begin():
            invoice = session.get(Invoice, invoice_id, with_for_update=True)
            if invoice is None or invoice.status != "open":
                return 0
            _record_assessment(session, container, invoice, terms, now)
    except IntegrityError:  # another clock assessed it first (unique per invoice)
        log.info("invoice %s was assessed by another run", invoice_id)
        return 0
    except PolicyError:  # a Case the policy refuses: keep going with the other invoices
        log.exception("invoice %s could not be assessed", invoice_id)
        return 0
    return 1


def _record_assessment(session: Session, container: Container, invoice: Invoice,
                       terms: LateFeeTerms, now: datetime) -> None:
    account_ref = invoice.customer_ref or ""
    case = overdue_case(session, invoice, now)
    row = decide_in(session, container, invoice.merchant, case, payment=None,
                    account_ref=account_ref, now=now)
    fee = row.decision["amounts"]["fee"]
    overdue = row.outcome != "no_action"
    session.add(InvoiceAssessment(
        merchant=invoice.merchant, provider=invoice.provider, invoice_ref=invoice.provider_id,
        account_ref=account_ref, overdue=overdue, late_fee=fee["amount"] or None,
        late_fee_currency=fee["currency"] if fee["amount"] else None, decision_id=row.id,
        assessed_at=now))
    session.flush()  # the unique key answers here, before the audit entries
    audit.record(session, merchant=invoice.merchant, actor=ACTOR, action="invoice.assessed",
                 subject=invoice.provider_id, at=now, decision=row.id, outcome=row.outcome,
                 overdue=overdue, late_fee=fee if fee["amount"] else None,
                 clause=terms.overdue_clause.citation)
    if overdue and terms.support is not None:
        _withhold_support(session, invoice.merchant, account_ref, invoice.provider_id,
                          terms.support.citation, now)


def overdue_case(session: Session, invoice: Invoice, now: datetime) -> dict[str, Any]:
    """The ``overdue_invoice`` Case: the account's invoices, each with when its charge was
    notified (the charge notice's send time, 003 §1.14b) when one went out."""
    account_ref = invoice.customer_ref or ""
    account = account_part(session, invoice.merchant, account_ref, invoice.currency)
    notified = _notified_at(session, invoice.merchant, account_ref)
    for entry in account.get("invoices", []):
        if entry["number"] in notified:
            entry["notified_at"] = iso(notified[entry["number"]])
    return {"request": {"kind": "overdue_invoice", "received_at": iso(now),
                        "invoice_number": invoice.number},
            "account": account}


def _notified_at(session: Session, merchant: str, account_ref: str) -> dict[str, datetime]:
    """Invoice number -> when its charge notice was sent, for one account."""
    rows = session.execute(select(Invoice.number, Notice.sent_at).join(
        Notice, (Notice.merchant == Invoice.merchant)
        & (Notice.subject_ref == Invoice.provider_id)).where(
        Invoice.merchant == merchant, Invoice.customer_ref == account_ref,
        Notice.kind == NoticeKind.CHARGE_NOTICE, Notice.sent_at.is_not(None))).all()
    return {number: sent_at for number, sent_at in rows
            if number is not None and sent_at is not None}


# -- account standing ------------------------------------------------------------------------------


def account_row(session: Session, merchant: str, account_ref: str, now: datetime) -> Account:
    """The account's row, created (all clear) the first time it is needed."""
    query = select(Account).where(Account.merchant == merchant, Account.account_ref == account_ref)
    account = session.scalars(query.with_for_update()).first()
    if account is None:
        account = Account(merchant=merchant, account_ref=account_ref, support_withheld=False,
                          suspended_for_breach=False, violations=0, updated_at=now)
        try:
            with session.begin_nested():
                session.add(account)
        except IntegrityError:  # created concurrently: use that one
            account = session.scalars(query.with_for_update()).one()
    return account


def _withhold_support(session: Session, merchant: str, account_ref: str, invoice_ref: str,
                      clause: str, now: datetime) -> None:
    account = account_row(session, merchant, account_ref, now)
    if account.support_withheld:
        return
    account.support_withheld, account.updated_at = True, now
    audit.record(session, merchant=merchant, actor=ACTOR, action="account.support_withheld",
                 subject=account_ref, at=now, invoice=invoice_ref, clause=clause)


def restore_support(container: Container, now: datetime) -> int:
    """Give support back to accounts none of whose invoices is overdue any more; returns how
    many accounts got it back."""
    with container.sessions() as session:
        accounts = list(session.scalars(select(Account.id).where(
            Account.support_withheld.is_(True)).order_by(Account.id).limit(BATCH)))
    return sum(_restore_one(container, account_id, now) for account_id in accounts)


def _restore_one(container: Container, account_id: int, now: datetime) -> int:
    with container.sessions() as session, session.begin():
        account = session.get(Account, account_id, with_for_update=True)
        if account is None or not account.support_withheld:
            return 0
        still_owed = _resolve_paid(session, account, now)
        if still_owed:
            return 0
        account.support_withheld, account.updated_at = False, now
        audit.record(session, merchant=account.merchant, actor=ACTOR,
                     action="account.support_restored", subject=account.account_ref, at=now)
    return 1


def _resolve_paid(session: Session, account: Account, now: datetime) -> int:
    """Mark the account's overdue assessments whose invoice is no longer owed; returns how many
    overdue invoices are still owed."""
    rows = session.execute(select(InvoiceAssessment, Invoice.status).join(
        Invoice, (Invoice.merchant == InvoiceAssessment.merchant)
        & (Invoice.provider == InvoiceAssessment.provider)
        & (Invoice.provider_id == InvoiceAssessment.invoice_ref)).where(
        InvoiceAssessment.merchant == account.merchant,
        InvoiceAssessment.account_ref == account.account_ref,
        InvoiceAssessment.overdue.is_(True), InvoiceAssessment.resolved_at.is_(None))).all()
    owed = 0
    for assessment, status in rows:
        if status in UNPAID:
            owed += 1
            continue
        assessment.resolved_at = now
        audit.record(session, merchant=account.merchant, actor=ACTOR,
                     action="invoice.overdue_resolved", subject=assessment.invoice_ref, at=now,
                     status=status, decision=assessment.decision_id)
    return owed
