"""The report's edges, one discrepancy kind at a time: which actions are reported as not
carried out or stuck (and when they become so), which refunds are unsolicited, and that a
period, a merchant and an id each bound what is compared."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

from ledger.models import Action, ActionStatus, Decision, Payment, Refund
from reports.build import build_report, period
from reports.reconcile import STUCK_AFTER, Run
from reports.records import Discrepancy, DiscrepancyKind, ProviderRecord, RecordKind
from service.bootstrap import Container
from tests.support.ledger import add_in_order

MERCHANT = "theopenhost"
OTHER = "cloudbehind"
NOW = datetime(2026, 9, 20, 12, tzinfo=UTC)
IN_SEPTEMBER = datetime(2026, 9, 10, 8, tzinfo=UTC)
_ids = itertools.count()


def _september(container: Container, records: list[ProviderRecord] | None = None
               ) -> list[Discrepancy]:
    report = build_report(container, MERCHANT, date(2026, 9, 1), date(2026, 10, 1),
                          records or [], now=NOW)
    return list(report["discrepancies"])



def _action(status: str, created_at: datetime, updated_at: datetime, *, kind: str = "refund",
            provider: str | None = "stripe", last_error: str | None = None,
            merchant: str = MERCHANT) -> tuple[Decision, Action]:
    n = next(_ids)
    decision = Decision(id=f"dec_edge_{n}", merchant=merchant, account_ref="cus_edge", pack="p",
                        request_kind="refund", outcome="full_refund", case={}, decision={},
                        evaluated_at=created_at)
    action = Action(id=f"act_edge_{n}", decision_id=decision.id, merchant=merchant, kind=kind,
                    provider=provider, amount=1500 + n, currency="USD", status=status,
                    last_error=last_error, created_at=created_at, updated_at=updated_at)
    return decision, action


def test_which_actions_are_not_carried_out_or_stuck(container: Container) -> None:
    """Failed: not carried out, whenever it was last touched. Pending or executing and
    untouched for longer than STUCK_AFTER: not carried out, or stuck mid-call; exactly
    STUCK_AFTER, or less, is still in progress. Each is reported with its provider ("ledger"
    for a credit), amount, currency and what happened; actions created outside the period, or
    another merchant's, are not."""
    long_ago = NOW - STUCK_AFTER - timedelta(seconds=1)
    failed = _action(ActionStatus.FAILED, IN_SEPTEMBER, NOW, last_error="charge_disputed")
    at_from = _action(ActionStatus.FAILED, datetime(2026, 9, 1, tzinfo=UTC), NOW)
    pending = _action(ActionStatus.PENDING, IN_SEPTEMBER, long_ago)
    stuck = _action(ActionStatus.EXECUTING, IN_SEPTEMBER, long_ago, kind="credit",
                    provider=None)
    fine = [_action(ActionStatus.EXECUTING, IN_SEPTEMBER, NOW - STUCK_AFTER),
            _action(ActionStatus.PENDING, IN_SEPTEMBER, NOW - timedelta(minutes=5)),
            _action(ActionStatus.SUCCEEDED, IN_SEPTEMBER, long_ago),
            _action(ActionStatus.SUBMITTED, IN_SEPTEMBER, long_ago),
            _action(ActionStatus.FAILED, datetime(2026, 8, 31, 23, 59, 59, tzinfo=UTC), NOW),
            _action(ActionStatus.FAILED, datetime(2026, 10, 1, tzinfo=UTC), NOW),
            _action(ActionStatus.FAILED, IN_SEPTEMBER, NOW, merchant=OTHER)]
    for pair in (failed, at_from, pending, stuck, *fine):
        add_in_order(container, *pair)

    found = {d.provider_id: d for d in _september(container)}
    assert sorted(found) == sorted(a.id for _, a in (failed, at_from, pending, stuck))
    f, p, s = found[failed[1].id], found[pending[1].id], found[stuck[1].id]
    assert (f.kind, f.provider, f.ledger_amount, f.currency, f.provider_amount) == (
        DiscrepancyKind.ACTION_NOT_EXECUTED, "stripe", failed[1].amount, "USD", None)
    assert f.detail == f"refund for decision {failed[0].id} is failed: charge_disputed"
    assert (p.kind, p.detail) == (DiscrepancyKind.ACTION_NOT_EXECUTED,
                                  f"refund for decision {pending[0].id} is pending")
    assert (s.kind, s.provider, s.detail) == (
        DiscrepancyKind.ACTION_STUCK, "ledger", f"credit for decision {stuck[0].id} is executing")
    assert f.occurred_at == NOW and s.occurred_at == long_ago


def _refund(provider_id: str, refunded_at: datetime, *, unsolicited: bool = True,
            merchant: str = MERCHANT, status: str = "succeeded") -> Refund:
    return Refund(merchant=merchant, provider="stripe", provider_id=provider_id,
                  version_at=refunded_at, version_rank=0, version_event=f"evt_{provider_id}",
                  livemode=False, payment_ref=f"ch_of_{provider_id}", status=status,
                  amount=300, currency="USD", refunded_at=refunded_at, unsolicited=unsolicited)


def _as_record(refund: Refund) -> ProviderRecord:
    assert refund.refunded_at is not None
    return ProviderRecord("stripe", RecordKind.REFUND, refund.provider_id, refund.amount,
                          refund.currency, refund.status, refund.refunded_at,
                          related_id=refund.payment_ref)


def test_unsolicited_refunds_of_the_period_and_the_merchant_only(container: Container) -> None:
    """A refund made at the provider with no decision of ours is reported once, in the period it
    was made, for its merchant, naming the payment and the event; one we asked for is not."""
    theirs = _refund("re_edge_theirs", IN_SEPTEMBER)
    ours = _refund("re_edge_ours", IN_SEPTEMBER, unsolicited=False)
    others = [_refund("re_edge_august", datetime(2026, 8, 31, 23, 59, 59, tzinfo=UTC)),
              _refund("re_edge_october", datetime(2026, 10, 1, tzinfo=UTC)),
              _refund("re_edge_other", IN_SEPTEMBER, merchant=OTHER)]
    add_in_order(container, theirs, ours, *others)
    found = _september(container, [_as_record(theirs), _as_record(ours)])
    assert [(d.kind, d.provider_id) for d in found] == [
        (DiscrepancyKind.UNSOLICITED_REFUND, "re_edge_theirs")]
    [d] = found
    assert (d.provider, d.currency, d.ledger_amount, d.provider_amount, d.event_id,
            d.occurred_at) == ("stripe", "USD", 300, None, "evt_re_edge_theirs", IN_SEPTEMBER)
    assert d.detail == ("refund of ch_of_re_edge_theirs made at the provider with no decision "
                        "of ours")


def _payment(provider_id: str, paid_at: datetime, merchant: str = MERCHANT,
             status: str = "succeeded") -> Payment:
    return Payment(merchant=merchant, provider="stripe", provider_id=provider_id,
                   version_at=paid_at, version_rank=0, version_event=f"evt_{provider_id}",
                   livemode=False, kind="charge", status=status, amount=900,
                   currency="USD", paid_at=paid_at)


def test_a_record_is_known_only_as_this_merchants_payment_or_refund(container: Container
                                                                    ) -> None:
    """A provider record is ours when this merchant's ledger holds a payment or a refund with
    its provider and id, from any period (a payment from August reported again in September is
    not missing). The same id at another merchant, or at another provider, is not: missing in
    the ledger."""
    add_in_order(container, _payment("ch_edge_ours", IN_SEPTEMBER),
                 _payment("ch_edge_only_paypal", IN_SEPTEMBER),
                 _refund("re_edge_their_refund", IN_SEPTEMBER, unsolicited=False, merchant=OTHER),
                 _payment("ch_edge_elsewhere", IN_SEPTEMBER, merchant=OTHER),
                 _payment("ch_edge_august", datetime(2026, 8, 15, tzinfo=UTC)),
                 _refund("re_edge_known", IN_SEPTEMBER, unsolicited=False))
    records = [ProviderRecord("stripe", RecordKind.PAYMENT, pid, 900, "USD", "succeeded",
                              IN_SEPTEMBER)
               for pid in ("ch_edge_ours", "ch_edge_elsewhere", "ch_edge_august")]
    records.append(_as_record(_refund("re_edge_known", IN_SEPTEMBER)))
    records.append(ProviderRecord("paypal", RecordKind.PAYMENT, "ch_edge_ours", 900, "USD",
                                  "completed", IN_SEPTEMBER))  # same id, other provider
    records.append(ProviderRecord("paypal", RecordKind.REFUND, "re_edge_known", 300, "USD",
                                  "completed", IN_SEPTEMBER))  # same id, other provider
    records.append(ProviderRecord("paypal", RecordKind.PAYMENT, "ch_edge_only_paypal", 900,
                                  "USD", "completed", IN_SEPTEMBER))  # ours is Stripe's
    records.append(ProviderRecord("stripe", RecordKind.REFUND, "re_edge_their_refund", 300,
                                  "USD", "succeeded", IN_SEPTEMBER))  # another merchant's
    found = sorted((d.kind, d.provider, d.provider_id) for d in _september(container, records))
    assert found == [(DiscrepancyKind.MISSING_AT_PROVIDER, "stripe", "ch_edge_only_paypal"),
                     (DiscrepancyKind.MISSING_IN_LEDGER, "paypal", "ch_edge_only_paypal"),
                     (DiscrepancyKind.MISSING_IN_LEDGER, "paypal", "ch_edge_ours"),
                     (DiscrepancyKind.MISSING_IN_LEDGER, "paypal", "re_edge_known"),
                     (DiscrepancyKind.MISSING_IN_LEDGER, "stripe", "ch_edge_elsewhere"),
                     (DiscrepancyKind.MISSING_IN_LEDGER, "stripe", "re_edge_their_refund")]


def test_ledger_entries_are_those_of_the_period_and_the_merchant(container: Container) -> None:
    """Payments paid and refunds made in [--from, --to), of this merchant, are compared; those
    at --to, before --from or of another merchant are not (nothing reported missing for them)."""
    add_in_order(container,
                 _payment("ch_edge_in", IN_SEPTEMBER),
                 _payment("ch_edge_at_to", datetime(2026, 10, 1, tzinfo=UTC)),
                 _payment("ch_edge_before", datetime(2026, 8, 31, 23, 59, 59, tzinfo=UTC)),
                 _payment("ch_edge_theirs", IN_SEPTEMBER, merchant=OTHER),
                 _refund("re_edge_in", IN_SEPTEMBER, unsolicited=False),
                 _refund("re_edge_at_to", datetime(2026, 10, 1, tzinfo=UTC), unsolicited=False),
                 _refund("re_edge_theirs", IN_SEPTEMBER, unsolicited=False, merchant=OTHER))
    found = sorted((d.kind, d.provider_id, d.ledger_amount, d.detail, d.event_id,
                    d.occurred_at) for d in _september(container))
    assert found == [
        (DiscrepancyKind.MISSING_AT_PROVIDER, "ch_edge_in", 900,
         "payment in the ledger has no provider record", "evt_ch_edge_in", IN_SEPTEMBER),
        (DiscrepancyKind.MISSING_AT_PROVIDER, "re_edge_in", 300,
         "refund in the ledger has no provider record", "evt_re_edge_in", IN_SEPTEMBER)]


def test_progress_is_reported_as_records_are_staged_and_entries_matched(
        container: Container) -> None:
    """A long report says how far it got: the provider records staged so far, then the ledger
    entries that matched (the CLI's progress line shows both)."""
    add_in_order(container, _payment("ch_edge_progress", IN_SEPTEMBER))
    seen: list[tuple[str, int]] = []
    build_report(container, MERCHANT, date(2026, 9, 1), date(2026, 10, 1),
                 [ProviderRecord("stripe", RecordKind.PAYMENT, "ch_edge_progress", 900, "USD",
                                 "succeeded", IN_SEPTEMBER)],
                 progress=lambda what, n: seen.append((what, n)), now=NOW)
    assert seen == [("staged provider records", 1), ("matched ledger entries", 1)]


def test_an_entry_the_provider_has_no_record_of_is_missing_whatever_its_status(
        container: Container) -> None:
    """A payment still pending in the ledger, or one that failed, that the provider reports
    nothing about is missing at the provider, as a settled one is."""
    for provider_id, status in (("ch_edge_pending", "pending"), ("ch_edge_failed", "failed"),
                                ("ch_edge_settled", "succeeded")):
        add_in_order(container, _payment(provider_id, IN_SEPTEMBER, status=status))
    found = sorted((d.kind, d.provider_id) for d in _september(container))
    assert found == [(DiscrepancyKind.MISSING_AT_PROVIDER, "ch_edge_failed"),
                     (DiscrepancyKind.MISSING_AT_PROVIDER, "ch_edge_pending"),
                     (DiscrepancyKind.MISSING_AT_PROVIDER, "ch_edge_settled")]


def test_two_reports_staged_at_once_each_compare_their_own_records(container: Container
                                                                   ) -> None:
    """Two people run reports at the same moment (the staging table is shared): each compares
    the ledger with the records it staged, never with the other's."""
    add_in_order(container, _payment("ch_edge_shared", IN_SEPTEMBER))
    start, end = period(date(2026, 9, 1), date(2026, 10, 1))
    agreeing, disagreeing = Run(container.engine, MERCHANT, start, end), \
        Run(container.engine, MERCHANT, start, end)
    try:
        agreeing.stage([ProviderRecord("stripe", RecordKind.PAYMENT, "ch_edge_shared", 900,
                                       "USD", "succeeded", IN_SEPTEMBER)])
        disagreeing.stage([ProviderRecord("stripe", RecordKind.PAYMENT, "ch_edge_shared", 700,
                                          "USD", "succeeded", IN_SEPTEMBER),
                           ProviderRecord("stripe", RecordKind.PAYMENT, "ch_edge_unknown", 50,
                                          "USD", "succeeded", IN_SEPTEMBER)])
        assert list(agreeing.discrepancies(now=NOW)) == []
        assert [(d.kind, d.provider_amount) for d in disagreeing.discrepancies(now=NOW)] == [
            (DiscrepancyKind.AMOUNT_MISMATCH, 700), (DiscrepancyKind.MISSING_IN_LEDGER, 50)]
    finally:
        agreeing.close()
        disagreeing.close()
