"""The report's account-credit figures: granted and used in the period, per currency, where a
use whose refund failed (and did not land after all) gave the credit back and is not a use,
and a use returned by a voided invoice is taken off the uses."""

from __future__ import annotations

from datetime import UTC, date, datetime

from ledger.models import AccountCredit, Action, ActionStatus, Decision, Refund
from reports.build import build_report
from service.bootstrap import Container
from tests.support.ledger import add_in_order, credit_refund_action, provider_refund

MERCHANT = "theopenhost"
SEPT_10 = datetime(2026, 9, 10, 8, tzinfo=UTC)
SEPT_12 = datetime(2026, 9, 12, 8, tzinfo=UTC)



def _grant(amount: int, currency: str, at: datetime, merchant: str = MERCHANT
           ) -> AccountCredit:
    return AccountCredit(merchant=merchant, account_ref="cus_credit", amount=amount,
                         currency=currency, reason="overpayment", clause="1.7c",
                         created_at=at)


def _use(grant: AccountCredit, amount: int, applied_to: str, action: Action | None = None
         ) -> AccountCredit:
    return AccountCredit(merchant=MERCHANT, account_ref="cus_credit", amount=-amount,
                         currency=grant.currency, reason="paid", clause="1.8",
                         created_at=SEPT_12, applies_to=grant.id, applied_to=applied_to,
                         action_id=action.id if action else None)


def _refund_action(n: int, status: str) -> tuple[Decision, Action]:
    return credit_refund_action(f"credit_{n}", status, merchant=MERCHANT, account="cus_credit",
                                at=SEPT_12)


def _provider_refund(action: Action, status: str) -> Refund:
    return provider_refund(action.id, status, merchant=MERCHANT, at=SEPT_12)


def test_credits_granted_on_one_day_are_charted_together(container: Container) -> None:
    """Two grants on one day in one currency are one point of the chart, their sum; the
    smallest grant, one cent, counts."""
    add_in_order(container, _grant(5000, "USD", SEPT_10), _grant(1, "USD", SEPT_10),
                 _grant(250, "EUR", SEPT_10))
    report = build_report(container, MERCHANT, date(2026, 9, 1), date(2026, 10, 1), [])
    assert [(d["date"], d["currency"], d["credits"]) for d in report["daily"]] == [
        ("2026-09-10", "EUR", 250), ("2026-09-10", "USD", 5001)]


def test_credit_granted_and_used_in_the_period(container: Container) -> None:
    usd, eur = _grant(5000, "USD", SEPT_10), _grant(1000, "EUR", SEPT_12)
    add_in_order(container, usd, eur, _grant(7000, "USD", datetime(2026, 8, 31, tzinfo=UTC)),
                 _grant(8000, "USD", datetime(2026, 10, 1, tzinfo=UTC)),  # at --to: October's
                 _grant(600, "USD", datetime(2026, 9, 1, tzinfo=UTC)),  # at --from: September's
                 _grant(9000, "USD", SEPT_10, merchant="cloudbehind"))
    done, failed, landed, bounced = (_refund_action(n, status) for n, status in enumerate(
        (ActionStatus.SUCCEEDED, ActionStatus.FAILED, ActionStatus.FAILED, ActionStatus.FAILED)))
    for decision, action in (done, failed, landed, bounced):
        add_in_order(container, decision, action)
    add_in_order(container, _provider_refund(landed[1], "succeeded"),
                 _provider_refund(bounced[1], "failed"))
    add_in_order(container,
                 _use(usd, 1200, "PAY-used", done[1]),  # its refund went through: used
                 _use(usd, 800, "PAY-given-back", failed[1]),  # failed, nothing landed: back
                 _use(usd, 500, "PAY-landed", landed[1]),  # failed, yet its refund landed: used
                 _use(usd, 300, "PAY-bounced", bounced[1]),  # failed, its refund failed too: back
                 _use(usd, 400, "in_voided"),  # used by a Stripe invoice...
                 AccountCredit(merchant=MERCHANT, account_ref="cus_credit", amount=400,
                               currency="USD", reason="voided", clause="1.8",
                               created_at=SEPT_12, applies_to=usd.id,
                               applied_to="in_voided:voided"))  # ...that was voided: given back

    report = build_report(container, MERCHANT, date(2026, 9, 1), date(2026, 10, 1), [])
    assert report["currencies"]["USD"]["credit_granted"] == 5000 + 600
    assert report["currencies"]["USD"]["credit_used"] == 1200 + 500
    assert report["currencies"]["EUR"]["credit_granted"] == 1000
    assert report["currencies"]["EUR"]["credit_used"] == 0
    # The chart shows what was granted, on the day it was granted.
    assert [(d["date"], d["currency"], d["credits"]) for d in report["daily"]
            if d["credits"]] == [("2026-09-01", "USD", 600), ("2026-09-10", "USD", 5000),
                                 ("2026-09-12", "EUR", 1000)]
