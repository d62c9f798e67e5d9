"""The clock's scheduled jobs on a real ledger: overdue invoices, late fees, support withheld and
restored, renewal reminders, charge notices, cancellation confirmations and their delivery."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from ledger.models import AuditEntry, Customer, Decision
from ledger.schedule_models import Account, InvoiceAssessment, Notice, NoticeKind
from sandbox import samples
from service.bootstrap import Container
from tests.support import stripe as stripe_sig
from tests.support.delivery import deliver, run_worker
from tests.support.smtp import smtp_server
from workers import scheduled
from workers.notices import confirm_cancellation, deliver_due, schedule_notices
from workers.scheduled import account_flags, mark_overdue, run_scheduled

MERCHANT = "theopenhost"
DUE = datetime(2026, 1, 21, 12, 0, tzinfo=UTC)
OVERDUE_AT = DUE + timedelta(hours=24)  # 003 §1.6


def open_invoice(client: Any, container: Container, key: str, amount: int = 10_000,
                 cycle: int = 1, due: datetime = DUE) -> samples.Scenario:
    """A TheOpenHost Stripe subscription whose invoice of ``cycle`` is open, due at ``due``."""
    s = samples.Scenario(key=key, amount=amount)
    deliver(client, "stripe", samples.stripe_event("customer.subscription.created", s))
    deliver(client, "stripe", samples.stripe_event("invoice.finalized", s, cycle=cycle,
                                                   due_date=int(due.timestamp())))
    run_worker(container)
    return s


def pay(client: Any, container: Container, s: samples.Scenario, cycle: int = 1,
        due: datetime = DUE) -> None:
    deliver(client, "stripe", samples.stripe_event("invoice.paid", s, cycle=cycle,
                                                   due_date=int(due.timestamp())))
    run_worker(container)


def notify_charges(container: Container, due: datetime = DUE) -> None:
    """Schedule and send the charge notices (003 §1.14b) well before the due date."""
    schedule_notices(container, due - timedelta(days=20))
    deliver_due(container, due - timedelta(days=11))


def assessments(container: Container) -> list[InvoiceAssessment]:
    with container.sessions() as session:
        return list(session.scalars(select(InvoiceAssessment)))


def account(container: Container, ref: str) -> Account | None:
    with container.sessions() as session:
        return session.scalars(select(Account).where(Account.account_ref == ref)).first()


def notices(container: Container, kind: str | None = None) -> list[Notice]:
    with container.sessions() as session:
        query = select(Notice).order_by(Notice.id)
        if kind is not None:
            query = query.where(Notice.kind == kind)
        return list(session.scalars(query))


def audit_actions(container: Container) -> list[str]:
    with container.sessions() as session:
        return list(session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


# -- overdue invoices ------------------------------------------------------------------------------


def test_an_invoice_a_second_short_of_24_hours_past_due_is_not_overdue(
        client: Any, container: Container) -> None:
    """24 hours less one second after the due date, nothing is assessed (003 §1.6)."""
    open_invoice(client, container, "overdue-early")
    notify_charges(container)
    assert mark_overdue(container, OVERDUE_AT - timedelta(seconds=1)) == 0
    assert assessments(container) == []


@pytest.mark.parametrize(("amount", "fee"), [(10_000, 3_500), (1_000, 500)])
def test_an_invoice_24_hours_past_due_gets_the_greater_of_35_percent_and_5_dollars(
        client: Any, container: Container, amount: int, fee: int) -> None:
    """At 24 hours past due the Decision's late fee (003 §1.5) is recorded and support withheld."""
    s = open_invoice(client, container, f"overdue-fee-{amount}", amount=amount)
    notify_charges(container)
    assert mark_overdue(container, OVERDUE_AT) == 1
    [assessed] = assessments(container)
    assert (assessed.invoice_ref, assessed.account_ref) == (s.invoice_id, s.customer_id)
    assert (assessed.overdue, assessed.late_fee, assessed.late_fee_currency) == (True, fee, "USD")
    with container.sessions() as session:
        decision = session.get(Decision, assessed.decision_id)
    assert decision is not None and decision.outcome == "late_fee"
    assert decision.decision["amounts"]["fee"] == {"amount": fee, "currency": "USD"}
    cited = {r["clause"] for r in decision.decision["reasons"]}
    assert {"003 §1.5", "003 §1.6", "003 §1.14b"} <= cited
    withheld = account(container, s.customer_id)
    assert withheld is not None and withheld.support_withheld
    assert {"invoice.assessed", "account.support_withheld"} <= set(audit_actions(container))


def test_an_overdue_invoice_never_notified_goes_to_review_without_a_fee(
        client: Any, container: Container) -> None:
    """Without a charge notice 10 days ahead (003 §1.14b) the fee waits for a person."""
    s = open_invoice(client, container, "overdue-unnotified")
    assert mark_overdue(container, OVERDUE_AT) == 1
    [assessed] = assessments(container)
    assert (assessed.overdue, assessed.late_fee) == (True, None)
    with container.sessions() as session:
        decision = session.get(Decision, assessed.decision_id)
    assert decision is not None and decision.outcome == "needs_review"
    withheld = account(container, s.customer_id)
    assert withheld is not None and withheld.support_withheld


def test_running_the_job_twice_assesses_an_invoice_once(client: Any, container: Container) -> None:
    """A second run (or a later one) neither decides nor records the invoice again."""
    open_invoice(client, container, "overdue-twice")
    notify_charges(container)
    assert mark_overdue(container, OVERDUE_AT) == 1
    assert mark_overdue(container, OVERDUE_AT + timedelta(hours=1)) == 0
    assert len(assessments(container)) == 1
    with container.sessions() as session:
        decisions = session.scalars(select(Decision).where(
            Decision.request_kind == "overdue_invoice")).all()
    assert len(decisions) == 1


def test_paying_the_overdue_invoice_gives_support_back(client: Any, container: Container) -> None:
    """Once the only overdue invoice is paid, the next run restores support (003 §1.4)."""
    s = open_invoice(client, container, "overdue-paid")
    notify_charges(container)
    mark_overdue(container, OVERDUE_AT)
    pay(client, container, s)
    mark_overdue(container, OVERDUE_AT + timedelta(hours=2))
    restored = account(container, s.customer_id)
    assert restored is not None and not restored.support_withheld
    [assessed] = assessments(container)
    assert assessed.resolved_at == OVERDUE_AT + timedelta(hours=2)
    assert "account.support_restored" in audit_actions(container)


def test_support_stays_withheld_while_another_invoice_is_overdue(
        client: Any, container: Container) -> None:
    """Paying one of two overdue invoices of an account does not restore support."""
    s = open_invoice(client, container, "overdue-two")
    deliver(client, "stripe", samples.stripe_event("invoice.finalized", s, cycle=2,
                                                   due_date=int(DUE.timestamp())))
    run_worker(container)
    assert mark_overdue(container, OVERDUE_AT) == 2
    pay(client, container, s, cycle=1)
    mark_overdue(container, OVERDUE_AT + timedelta(hours=2))
    still = account(container, s.customer_id)
    assert still is not None and still.support_withheld


def test_account_flags_read_the_accounts_table(client: Any, container: Container) -> None:
    """Unknown accounts are in good standing; a recorded suspension and violations are read."""
    s = open_invoice(client, container, "overdue-flags")
    mark_overdue(container, OVERDUE_AT)
    with container.sessions() as session, session.begin():
        assert account_flags(session, MERCHANT, "cus_unknown") == {
            "suspended_for_breach": False, "violations": 0}
        session.execute(update(Account).values(suspended_for_breach=True, violations=2))
    with container.sessions() as session:
        assert account_flags(session, MERCHANT, s.customer_id) == {
            "suspended_for_breach": True, "violations": 2}


# -- notices ---------------------------------------------------------------------------------------


def test_a_renewal_reminder_is_scheduled_once_5_days_before_the_billing_date(
        client: Any, container: Container) -> None:
    """CloudBehind's reminder (002 billing.2) is due exactly 5 days before current_period_end."""
    s = samples.Scenario(key="reminder")
    resp = stripe_sig.post(client, samples.stripe_event("customer.subscription.created", s),
                           merchant="cloudbehind", secret="whsec_test_cloudbehind_current")
    assert resp.status_code == 200
    run_worker(container)
    billing_at = datetime.fromtimestamp(s.period(1)[1], UTC)
    now = datetime.fromtimestamp(s.period_start, UTC) + timedelta(days=1)
    assert schedule_notices(container, now) == 1
    assert schedule_notices(container, now + timedelta(hours=1)) == 0
    [reminder] = notices(container)
    assert reminder.kind == NoticeKind.AUTO_RENEWAL_REMINDER
    assert (reminder.merchant, reminder.account_ref) == ("cloudbehind", s.customer_id)
    assert reminder.send_at == billing_at - timedelta(days=5)
    assert reminder.body["clause"] == "002 §billing.2"


def test_turning_off_auto_renewal_withdraws_the_unsent_reminder(
        client: Any, container: Container) -> None:
    """A subscription set to cancel at period end will not bill, so its reminder is withdrawn."""
    s = samples.Scenario(key="reminder-off")
    for event in (samples.stripe_event("customer.subscription.created", s),
                  samples.stripe_event("customer.subscription.updated", s,
                                       change="cancel_at_period_end")):
        stripe_sig.post(client, event, merchant="cloudbehind",
                        secret="whsec_test_cloudbehind_current")
        run_worker(container)
        schedule_notices(container, datetime.fromtimestamp(s.period_start, UTC))
    [reminder] = notices(container)
    assert reminder.withdrawn_at is not None
    assert deliver_due(container, reminder.send_at) == 0


def test_a_charge_notice_is_scheduled_at_least_10_days_before_the_due_date(
        client: Any, container: Container) -> None:
    """003 §1.14b: the notice is due 10 days before the due date, less a day's margin."""
    s = open_invoice(client, container, "charge-notice")
    assert schedule_notices(container, DUE - timedelta(days=20)) == 1
    assert schedule_notices(container, DUE - timedelta(days=19)) == 0
    [notice] = notices(container)
    assert (notice.kind, notice.subject_ref) == (NoticeKind.CHARGE_NOTICE, s.invoice_id)
    assert notice.send_at == DUE - timedelta(days=11)
    assert notice.body["clause"] == "003 §1.14b"


def test_the_notifier_logs_due_notices_and_leaves_future_ones(
        client: Any, container: Container, caplog: pytest.LogCaptureFixture) -> None:
    """Due notices are logged and marked sent; one whose time has not come stays unsent."""
    s = open_invoice(client, container, "notifier")
    now = DUE - timedelta(days=20)
    schedule_notices(container, now)
    with container.sessions() as session, session.begin():
        confirm_cancellation(session, MERCHANT, s.customer_id, s.subscription_id, DUE,
                             "dec_test", now=now)
    with caplog.at_level(logging.INFO, logger="workers.notices"):
        assert deliver_due(container, now) == 1
    charge, cancelled = (notices(container, kind) for kind in (NoticeKind.CHARGE_NOTICE,
                                                                NoticeKind.CANCELLATION_CONFIRMATION))
    assert cancelled[0].sent_at == now and cancelled[0].channel == "log"
    assert charge[0].sent_at is None
    [line] = [r for r in caplog.records if r.getMessage().startswith("notice sent")]
    assert "kind=cancellation_confirmation" in line.getMessage()
    assert deliver_due(container, now + timedelta(days=9)) == 1
    assert notices(container, NoticeKind.CHARGE_NOTICE)[0].sent_at == now + timedelta(days=9)


def test_confirming_a_cancellation_writes_one_notice(client: Any, container: Container) -> None:
    """A cancellation confirmed twice (a retried flow) is still one notice, due at once."""
    now = DUE
    with container.sessions() as session, session.begin():
        assert confirm_cancellation(session, MERCHANT, "cus_x", "sub_x", now, "dec_1", now=now)
        assert not confirm_cancellation(session, MERCHANT, "cus_x", "sub_x", now, "dec_1",
                                        now=now)
    [notice] = notices(container)
    assert (notice.kind, notice.send_at, notice.body["decision_id"]) == (
        NoticeKind.CANCELLATION_CONFIRMATION, now, "dec_1")


def test_notices_go_by_smtp_when_configured_and_failures_are_retried(
        client: Any, container: Container, monkeypatch: pytest.MonkeyPatch) -> None:
    """With GATEWAY_SMTP_URL a refused send is counted and retried; the password is not kept."""
    s = open_invoice(client, container, "smtp")
    with container.sessions() as session, session.begin():
        session.execute(update(Customer).where(Customer.provider_id == s.customer_id)
                        .values(email="jenny@example.com"))
        confirm_cancellation(session, MERCHANT, s.customer_id, s.subscription_id, DUE, "dec_2",
                             now=DUE)
    with smtp_server() as (box, port):
        monkeypatch.setenv("GATEWAY_SMTP_URL", f"smtp://mailer:s3cret@127.0.0.1:{port}")
        box.refuse = True
        assert deliver_due(container, DUE) == 0
        [failed] = notices(container)
        assert (failed.attempts, failed.sent_at) == (1, None)
        assert failed.last_error and "451" in failed.last_error
        assert "s3cret" not in failed.last_error
        box.refuse = False
        assert deliver_due(container, DUE + timedelta(minutes=1)) == 1
    [sent] = notices(container)
    assert (sent.channel, sent.attempts) == ("smtp", 2)
    [message] = box.messages
    assert message["To"] == "jenny@example.com"
    assert message["Subject"] == "Your cancellation is confirmed"
    assert box.logins[-1] == ("mailer", "s3cret")


def test_one_failing_scheduled_job_does_not_stop_the_others(
        client: Any, container: Container, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """run_scheduled logs a job's exception and still schedules and delivers notices."""
    open_invoice(client, container, "guarded")

    def broken(container: Container, now: datetime) -> int:
        raise RuntimeError("boom")

    monkeypatch.setattr(scheduled, "mark_overdue", broken)
    with caplog.at_level(logging.ERROR, logger="workers.scheduled"):
        run_scheduled(container, DUE - timedelta(days=5))
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)
    [notice] = notices(container)
    assert notice.sent_at == DUE - timedelta(days=5)
