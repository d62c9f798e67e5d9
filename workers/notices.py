"""Notices to customers: written to the outbox when they become due by policy, sent by the clock.

``schedule_notices`` writes what the packs promise: the auto-renewal reminder (002 billing.2,
5 days before the next automatic billing date) and the charge notice (003 §1.14b, at least
10 days before an invoice's due date). ``confirm_cancellation`` writes the cancellation
confirmation (000 §3). Each notice is one row, unique by merchant, kind and subject, carrying the
time it is to be sent; ``deliver_due`` sends the ones whose time has come, by log line or SMTP.
A notice that stops being true before it is sent (renewal turned off, invoice paid) is withdrawn.
"""

from __future__ import annotations

import logging
import os
import smtplib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from ledger import audit
from ledger.db import reading
from ledger.models import Customer, Invoice, Subscription
from ledger.objects import add_once
from ledger.schedule_models import Notice, NoticeKind
from policy.pack import Limit, Pack
from service.bootstrap import Container
from service.logs import bind, log_context
from workers.cases import iso

log = logging.getLogger(__name__)
ACTOR = "clock"
MAX_ATTEMPTS = 10  # then the notice waits, with its last error, for an operator
BATCH = 500
# The notifier runs on the clock's interval and retries failures on later runs: a charge notice
# timed at exactly 10 days would go out a little later than that, and 003 §1.14b says "at least".
CHARGE_NOTICE_MARGIN = timedelta(days=1)
_STRIPE_AUTO_RENEWING = ("active", "trialing")
_PAYPAL_AUTO_RENEWING = ("ACTIVE",)
# 000 §3 is in the pack only in part; the sentence that promises the confirmation is quoted here.
CANCELLATION_CLAUSE = ("000 §3", ("Upon cancellation, Client will receive notification in "
                                   "electronic format of such cancellation."))


class NoticeError(Exception):
    """A notice could not be sent; ``retryable`` says whether a later run may succeed."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


# -- scheduling ------------------------------------------------------------------------------------


def reminder_terms(pack: Pack) -> Limit | None:
    """The pack's auto-renewal reminder (days before the billing date, and its clause)."""
    return next((g.reminder for g in pack.guarantee if g.reminder is not None), None)


def charge_notice_terms(pack: Pack) -> Limit | None:
    """The pack's charge notice (days before the due date, and its clause)."""
    return pack.late_fee.notice_days if pack.late_fee is not None else None


def schedule_notices(container: Container, now: datetime | None = None) -> int:
    """Write the reminders and charge notices now known; withdraw stale ones. Returns how many
    were written."""
    now = now or datetime.now(UTC)
    written = 0
    for name, merchant in container.settings.merchants.items():
        pack = container.policy_pack(merchant.policy_pack)
        reminder, charge = reminder_terms(pack), charge_notice_terms(pack)
        with container.sessions() as session, session.begin():
            if reminder is not None:
                written += _schedule(session, name, NoticeKind.AUTO_RENEWAL_REMINDER,
                                     _reminders(session, name, reminder, now), now)
            if charge is not None:
                written += _schedule(session, name, NoticeKind.CHARGE_NOTICE,
                                     _charge_notices(session, name, charge, now), now)
    return written


@dataclass(frozen=True)
class _Planned:
    account_ref: str
    subject_ref: str
    send_at: datetime
    body: dict[str, Any]


def _schedule(session: Session, merchant: str, kind: NoticeKind, planned: Iterable[_Planned],
              now: datetime) -> int:
    wanted = {p.subject_ref: p for p in planned}
    written = sum(add_notice(session, merchant, kind, p.account_ref, p.subject_ref, p.send_at,
                             p.body, now) for p in wanted.values())
    _withdraw_stale(session, merchant, kind, set(wanted), now)
    return written


def add_notice(session: Session, merchant: str, kind: NoticeKind, account_ref: str,
               subject_ref: str, send_at: datetime, body: dict[str, Any], now: datetime,
               actor: str = ACTOR) -> bool:
    """Write one notice unless it exists (unique merchant+kind+subject); True if written."""
    with reading(session, (Notice.subject_ref, subject_ref)):
        exists = session.scalar(_NOTICE_EXISTS, {"merchant": merchant, "kind": kind,
                                                 "subject": subject_ref})
    if exists is not None:
        return False
    notice = Notice(merchant=merchant, account_ref=account_ref, kind=kind,
                    subject_ref=subject_ref, send_at=send_at, body=body, attempts=0,
                    created_at=now)
    if not add_once(session, notice):  # written by a concurrent run between look and insert
        return False
    audit.record(session, merchant=merchant, actor=actor, action="notice.scheduled",
                 subject=subject_ref, at=now, kind=str(kind), send_at=iso(send_at),
                 clause=body.get("clause"))
    return True


_NOTICE_EXISTS = select(Notice.id).where(  # built once: it is asked once per cancellation
    Notice.merchant == bindparam("merchant"), Notice.kind == bindparam("kind"),
    Notice.subject_ref == bindparam("subject"))


def _withdraw_stale(session: Session, merchant: str, kind: NoticeKind, wanted: set[str],
                    now: datetime) -> None:
    unsent = session.scalars(select(Notice).where(
        Notice.merchant == merchant, Notice.kind == kind, Notice.sent_at.is_(None),
        Notice.withdrawn_at.is_(None))).all()
    for notice in unsent:
        if notice.subject_ref not in wanted:
            notice.withdrawn_at = now
            audit.record(session, merchant=merchant, actor=ACTOR, action="notice.withdrawn",
                         subject=notice.subject_ref, at=now, kind=notice.kind,
                         notice=notice.id)


def _reminders(session: Session, merchant: str, terms: Limit, now: datetime
               ) -> Iterable[_Planned]:
    """002 billing.2: one reminder per subscription and billing date still to come."""
    subs = session.scalars(select(Subscription).where(
        Subscription.merchant == merchant,
        or_(Subscription.status.in_(_STRIPE_AUTO_RENEWING),
            Subscription.status.in_(_PAYPAL_AUTO_RENEWING)))).all()
    for sub in subs:
        billing_at = _next_billing(sub)
        if billing_at is None or billing_at <= now or sub.customer_ref is None:
            continue
        body = _body(terms.clause.citation,
                     "Your subscription renews soon",
                     f"Your subscription {sub.provider_id} renews automatically on "
                     f"{billing_at.date().isoformat()} and you will be charged for another "
                     "period. You can turn off automatic renewal at any time.",
                     subscription_ref=sub.provider_id, billing_at=iso(billing_at))
        yield _Planned(sub.customer_ref, f"{sub.provider_id}@{iso(billing_at)}",
                       billing_at - timedelta(days=terms.value), body)


def _next_billing(sub: Subscription) -> datetime | None:
    """When the subscription bills itself next, or None if it will not."""
    if sub.provider == "paypal":
        return sub.next_billing_at if sub.status in _PAYPAL_AUTO_RENEWING else None
    if sub.status not in _STRIPE_AUTO_RENEWING or sub.cancel_at_period_end:
        return None
    return sub.current_period_end or sub.next_billing_at


def _charge_notices(session: Session, merchant: str, terms: Limit, now: datetime
                    ) -> Iterable[_Planned]:
    """003 §1.14b: announce each open invoice's charge before its due date."""
    invoices = session.scalars(select(Invoice).where(
        Invoice.merchant == merchant, Invoice.status == "open", Invoice.due_at.is_not(None),
        Invoice.due_at > now, Invoice.customer_ref.is_not(None))).all()
    for inv in invoices:
        assert inv.due_at is not None and inv.customer_ref is not None
        amount = f"{inv.amount_due} {inv.currency} (minor units)"
        body = _body(terms.clause.citation,
                     f"Invoice {inv.number or inv.provider_id} is due on "
                     f"{inv.due_at.date().isoformat()}",
                     f"Invoice {inv.number or inv.provider_id} for {amount} will be due on "
                     f"{iso(inv.due_at)}.", invoice_ref=inv.provider_id,
                     invoice_number=inv.number, due_at=iso(inv.due_at),
                     amount={"amount": inv.amount_due, "currency": inv.currency})
        send_at = inv.due_at - timedelta(days=terms.value) - CHARGE_NOTICE_MARGIN
        yield _Planned(inv.customer_ref, inv.provider_id, send_at, body)


def _body(clause: str | None, subject: str, text: str, **facts: Any) -> dict[str, Any]:
    return {"subject": subject, "text": text, "clause": clause, **facts}


def recipient(session: Session, merchant: str, account_ref: str) -> str | None:
    """The account's email address as the ledger knows it when the notice is sent."""
    return session.scalar(select(Customer.email).where(
        Customer.merchant == merchant, Customer.provider_id == account_ref,
        Customer.email.is_not(None)).limit(1))


def confirm_cancellation(session: Session, merchant: str, account_ref: str,
                         subscription_ref: str, effective_at: datetime, decision_id: str,
                         now: datetime | None = None, actor: str = "worker") -> bool:
    """Write the cancellation confirmation (000 §3), due now; the caller commits. True if new."""
    now = now or datetime.now(UTC)
    body = _body(CANCELLATION_CLAUSE[0],
                 "Your cancellation is confirmed",
                 f"Your subscription {subscription_ref} is cancelled, effective "
                 f"{iso(effective_at)}.", subscription_ref=subscription_ref,
                 effective_at=iso(effective_at), decision_id=decision_id)
    return add_notice(session, merchant, NoticeKind.CANCELLATION_CONFIRMATION, account_ref,
                      subscription_ref, now, body, now, actor=actor)


# -- delivery --------------------------------------------------------------------------------------


class Transport(Protocol):
    @property
    def name(self) -> str: ...

    def send(self, notice: Notice, to: str | None) -> None: ...


class LogTransport:
    """The default: a structured log line per notice (no address, no text: only identifiers)."""

    name = "log"

    def send(self, notice: Notice, to: str | None) -> None:
        fields = {"notice": notice.id, "merchant": notice.merchant, "kind": notice.kind,
                  "account": notice.account_ref, "subject": notice.subject_ref,
                  "send_at": iso(notice.send_at), "clause": notice.body.get("clause")}
        log.info("notice sent %s", " ".join(f"{k}={v}" for k, v in fields.items()),
                 extra={"notice": fields})


@dataclass(frozen=True)
class SmtpTransport:
    """Email through an SMTP server given as ``smtp://user:pass@host:port`` (``smtps://`` for
    TLS from the start, ``?starttls=1`` to upgrade a plain connection)."""

    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool
    starttls: bool
    sender: str
    timeout: float = 10.0
    name: str = "smtp"

    def __repr__(self) -> str:  # the password never reaches a log line or a traceback
        return f"SmtpTransport({self.host}:{self.port}, tls={self.tls}, sender={self.sender})"

    @classmethod
    def from_url(cls, url: str, sender: str) -> SmtpTransport:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise NoticeError("GATEWAY_SMTP_URL must be smtp://[user:pass@]host[:port] or "
                              "smtps://...", retryable=False)
        tls = parts.scheme == "smtps"
        return cls(parts.hostname, parts.port or (465 if tls else 25),
                   unquote(parts.username) if parts.username else None,
                   unquote(parts.password) if parts.password else None, tls,
                   "starttls=1" in parts.query, sender)

    def send(self, notice: Notice, to: str | None) -> None:
        if not to:
            raise NoticeError("the account has no email address", retryable=False)
        message = EmailMessage()
        message["From"], message["To"] = self.sender, to
        message["Subject"] = notice.body.get("subject", "")
        message["Message-ID"] = f"<notice-{notice.id}-{notice.merchant}@gateway>"
        message.set_content(notice.body.get("text", ""))
        try:
            self._deliver(message)
        except (smtplib.SMTPException, OSError) as exc:
            # smtplib's messages quote the server, never our credentials.
            raise NoticeError(f"SMTP {self.host}:{self.port}: {type(exc).__name__}: {exc}") \
                from None

    def _deliver(self, message: EmailMessage) -> None:
        client_class = smtplib.SMTP_SSL if self.tls else smtplib.SMTP
        with client_class(self.host, self.port, timeout=self.timeout) as client:
            if self.starttls:
                client.starttls()
            if self.username:
                client.login(self.username, self.password or "")
            client.send_message(message)


def transport_from_env(env: Mapping[str, str] | None = None) -> Transport:
    """SMTP when ``GATEWAY_SMTP_URL`` is set (sender ``GATEWAY_SMTP_FROM``), else the log."""
    env = os.environ if env is None else env
    url = env.get("GATEWAY_SMTP_URL")
    if not url:
        return LogTransport()
    return SmtpTransport.from_url(url, env.get("GATEWAY_SMTP_FROM") or "notices@localhost")


def deliver_due(container: Container, now: datetime | None = None,
                transport: Transport | None = None) -> int:
    """Send every notice whose time has come and that is not sent; returns how many were sent."""
    now = now or datetime.now(UTC)
    transport = transport or transport_from_env()
    with container.sessions() as session:
        ids = list(session.scalars(select(Notice.id).where(
            Notice.sent_at.is_(None), Notice.withdrawn_at.is_(None), Notice.send_at <= now,
            Notice.attempts < MAX_ATTEMPTS).order_by(Notice.send_at, Notice.id).limit(BATCH)))
    with log_context():  # each notice binds its merchant; none is left bound after
        return sum(_deliver_one(container, notice_id, transport, now) for notice_id in ids)


def _deliver_one(container: Container, notice_id: int, transport: Transport,
                 now: datetime) -> bool:
    with container.sessions() as session, session.begin():
        # Held while sending: a second notifier skips the row instead of sending it again.
        notice = session.get(Notice, notice_id, with_for_update={"skip_locked": True})
        if notice is None or notice.sent_at is not None or notice.withdrawn_at is not None:
            return False
        bind(merchant=notice.merchant)
        try:
            transport.send(notice, recipient(session, notice.merchant, notice.account_ref))
        except NoticeError as exc:
            _failed(session, notice, exc, now)
            return False
        notice.sent_at, notice.channel = now, transport.name
        notice.attempts += 1
        audit.record(session, merchant=notice.merchant, actor=ACTOR, action="notice.sent",
                     subject=notice.subject_ref, at=now, kind=notice.kind, notice=notice.id,
                     channel=transport.name)
    return True


def _failed(session: Session, notice: Notice, exc: NoticeError, now: datetime) -> None:
    notice.attempts += 1
    notice.last_error = str(exc)
    if not exc.retryable:
        notice.attempts = max(notice.attempts, MAX_ATTEMPTS)
    audit.record(session, merchant=notice.merchant, actor=ACTOR, action="notice.failed",
                 subject=notice.subject_ref, at=now, kind=notice.kind, notice=notice.id,
                 error=str(exc), attempts=notice.attempts)
    log.warning("notice %s (%s) not sent, attempt %d: %s", notice.id, notice.kind,
                notice.attempts, exc)
