"""The report's refund figures: every refund made in the period, [--from, --to), of the
merchant, that did not fail, once each; by the outcome of the decision that asked for it and by
the clause its action cites ("no decision of ours" and "none" for a refund made at the
provider); and the payments captured, of the merchant only."""

from __future__ import annotations

from datetime import UTC, date, datetime

from ledger.models import Action, ActionStatus, Decision, Payment, Refund
from reports.build import build_report
from reports.records import ProviderRecord, RecordKind
from service.bootstrap import Container

MERCHANT = "theopenhost"
IN_JUNE = datetime(2026, 6, 10, 8, tzinfo=UTC)


def _ours(container: Container, n: int, outcome: str, clause: str) -> Action:
    decision = Decision(id=f"dec_refunds_{n}", merchant=MERCHANT, account_ref="cus_r",
                        pack="p", request_kind="refund", outcome=outcome, case={},
                        decision={}, evaluated_at=IN_JUNE)
    action = Action(id=f"act_refunds_{n}", decision_id=decision.id, merchant=MERCHANT,
                    kind="refund", provider="stripe", amount=1, currency="USD", clause=clause,
                    status=ActionStatus.SUCCEEDED, created_at=IN_JUNE, updated_at=IN_JUNE)
    with container.sessions() as session, session.begin():
        session.add(decision)
        session.flush()
        session.add(action)
    return action


def _refunded(container: Container, provider_id: str, amount: int, at: datetime,
              action: Action | None = None, status: str = "succeeded",
              merchant: str = MERCHANT) -> None:
    with container.sessions() as session, session.begin():
        session.add(Refund(merchant=merchant, provider="stripe", provider_id=provider_id,
                           version_at=at, version_rank=0, version_event=f"evt_{provider_id}",
                           livemode=False, payment_ref="ch_r", status=status, amount=amount,
                           currency="USD", refunded_at=at,
                           action_id=action.id if action else None))


def test_refunds_by_outcome_and_by_clause(container: Container) -> None:
    full_a = _ours(container, 1, "full_refund", "2.1")
    partial = _ours(container, 2, "partial_refund", "1.7b")
    full_b = _ours(container, 3, "full_refund", "2.1")
    _refunded(container, "re_r1", 1000, IN_JUNE, full_a)
    _refunded(container, "re_r2", 500, IN_JUNE, partial)
    _refunded(container, "re_r3", 300, IN_JUNE, full_b)
    _refunded(container, "re_r4", 200, IN_JUNE)  # made at the provider's dashboard
    _refunded(container, "re_r5", 100, datetime(2026, 6, 1, tzinfo=UTC))  # at exactly --from
    _refunded(container, "re_before", 9000, datetime(2026, 5, 31, 23, 59, 59, tzinfo=UTC))
    _refunded(container, "re_at_to", 9000, datetime(2026, 7, 1, tzinfo=UTC))
    _refunded(container, "re_failed", 9000, IN_JUNE, status="failed")
    _refunded(container, "re_theirs", 9000, IN_JUNE, merchant="cloudbehind")

    report = build_report(container, MERCHANT, date(2026, 6, 1), date(2026, 7, 1), [])
    usd = report["currencies"]["USD"]
    assert usd["refunds"] == 1000 + 500 + 300 + 200 + 100
    assert usd["refunds_by_outcome"] == {"full_refund": 1300, "partial_refund": 500,
                                         "no decision of ours": 300}
    assert usd["refunds_by_clause"] == {"2.1": 1300, "1.7b": 500, "none": 300}
    assert [(d["date"], d["refunds"]) for d in report["daily"]] == [
        ("2026-06-01", 100), ("2026-06-10", 2000)]


def test_gross_charges_are_the_merchants_own(container: Container) -> None:
    """Another merchant's payment in the same period is not this merchant's money; a payment of
    nothing adds nothing."""
    with container.sessions() as session, session.begin():
        for merchant, amount, currency in ((MERCHANT, 2500, "USD"), ("cloudbehind", 7000, "USD"),
                                           (MERCHANT, 0, "EUR")):
            session.add(Payment(merchant=merchant, provider="stripe",
                                provider_id=f"ch_gross_{merchant}_{currency}",
                                version_at=IN_JUNE, version_rank=0, version_event="evt",
                                livemode=False, kind="charge", status="succeeded",
                                amount=amount, currency=currency, paid_at=IN_JUNE))
    report = build_report(container, MERCHANT, date(2026, 6, 1), date(2026, 7, 1), [])
    assert report["currencies"]["USD"]["gross_charges"] == 2500
    assert report["currencies"]["EUR"]["gross_charges"] == 0  # a free order captured nothing


def test_provider_fees_add_up_per_currency(container: Container) -> None:
    """Fees the provider charged (its balance transactions of type fee) are totalled, not
    matched: every fee record of the period counts, in its currency."""
    fees = [ProviderRecord("stripe", RecordKind.FEE, f"txn_fee_{i}", amount, currency,
                           "succeeded", IN_JUNE)
            for i, (amount, currency) in enumerate(((59, "USD"), (31, "USD"), (40, "EUR")))]
    report = build_report(container, MERCHANT, date(2026, 6, 1), date(2026, 7, 1), fees)
    assert report["currencies"]["USD"]["provider_fees"] == 59 + 31
    assert report["currencies"]["EUR"]["provider_fees"] == 40
    assert report["discrepancies"] == []
