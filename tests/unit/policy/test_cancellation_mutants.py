"""Cancellations (seeds 000-003), pinned where the base cancellation tests do not reach: the words
of each identity and notice check (holding true or false, with its dates and numbers) and of each
note, the charge for late notice on a term of several months (one monthly equivalent rounded
down, or the whole term) and the period it adds, the line items, the access and flags of an
immediate cancellation, the forfeited add-ons, the past-due balance, and dates read on the
merchant's calendar whatever the machine's own time zone."""

from __future__ import annotations

import dataclasses
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest

from policy import Decision, LineItem, Outcome, case_from_json, evaluate
from policy.money import Money
from policy.pack import Pack, parse_pack

from .builders import T0, case, decide, failed, identity, invoices, money, order, pack

DAY = timedelta(days=1)
DUE = T0 + 31 * DAY  # 2025-04-01 09:00 UTC: an instant, not a date-only due date
PAID = invoices(("INV-1", T0 - 31 * DAY, True), ("INV-2", T0, True), ("INV-3", T0 + DAY, True))


def cancel(pack_name: str | Pack, at: datetime, *, zone: str = "UTC", due: datetime = DUE,
           account_invoices: list[dict[str, Any]] | None = None,
           request: dict[str, Any] | None = None, **order_extra: Any) -> Decision:
    """A cancellation received (and decided) at ``at``; by default every invoice is paid."""
    data = case("cancellation", at, request_extra=request,
                order=order(next_billing_at=due.isoformat(), **order_extra))
    data["account"] = {"invoices": PAID if account_invoices is None else account_invoices}
    data["time_zone"] = zone
    if isinstance(pack_name, Pack):
        return evaluate(pack_name, case_from_json(data), at)
    return decide(pack_name, data, now=at)


def variant(name: str, **cancellation: Any) -> Pack:
    """The shipped pack ``name`` with these [cancellation] keys replaced."""
    data = tomllib.loads(resources.files("policy").joinpath(f"packs/{name}.toml").read_text())
    data["cancellation"].update(cancellation)
    return parse_pack(name, data)


def reasons(d: Decision, clause: str) -> list[tuple[bool, str]]:
    """Whether each reason citing ``clause`` holds, and its detail, in order."""
    return [(r.holds, r.detail) for r in d.reasons if r.clause == clause]


@pytest.fixture
def machine_in_st_johns(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The machine's own zone (UTC-3:30, daylight saving from 9 March 2025) far from UTC and
    from the merchant's: a date read or a month stepped on it would show."""
    monkeypatch.setenv("TZ", "America/St_Johns")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(("day", "holds"), [(24, True), (25, False)], ids=["24th", "25th"])
def test_the_day_of_month_check_names_the_local_day_and_the_limit(day: int, holds: bool) -> None:
    """000 §1: the check holds (True, not merely truthy) before the 25th and fails from it,
    naming the day, the local date and the zone."""
    at = datetime(2025, 3, day, 12, 0, tzinfo=UTC)
    d = cancel("oneclick", at)
    assert reasons(d, "000 §1")[0] == (
        holds, f"received on day {day} of the month (2025-03-{day}, UTC; must be before day 25)")


@pytest.mark.parametrize(("before", "holds"), [(3, True), (2, False)], ids=["3 days", "2 days"])
def test_the_days_before_due_check_names_both_local_dates_and_the_days_needed(
        before: int, holds: bool) -> None:
    """003 §1.2d: at least 3 calendar days before the due date holds; 2 days fails."""
    d = cancel("theopenhost", DUE - before * DAY)
    assert reasons(d, "003 §1.2d") == [(
        holds, f"received 2025-03-{32 - before}, {before} calendar day(s) before the invoice due "
               "date 2025-04-01 (UTC dates; needs at least 3)")]


@pytest.mark.parametrize(("offset", "holds", "left"), [
    (-timedelta(seconds=1), True, "0d 00:00:01"),
    (timedelta(0), False, "0d 00:00:00"),
], ids=["a second before billing", "at the billing moment"])
def test_the_before_billing_check_gives_the_time_left_before_the_billing_date(
        offset: timedelta, holds: bool, left: str) -> None:
    """001 §2: strictly before the next billing date holds; the detail shows the time left."""
    d = cancel("digitalcare", DUE + offset)
    assert reasons(d, "001 §2")[0] == (
        holds, f"received {left} before the next billing date 2025-04-01T09:00:00+00:00 "
               "(needs any)")


@pytest.mark.parametrize(("pack_name", "charge", "effective", "citation"), [
    ("theopenhost", 499, datetime(2025, 5, 1, 9, 0, tzinfo=UTC), "003 §1.2e"),
    ("digitalcare", 5999, datetime(2026, 4, 1, 9, 0, tzinfo=UTC), "001 §2"),
    ("cloudbehind", 5999, datetime(2026, 4, 1, 9, 0, tzinfo=UTC), "002 §billing.4"),
], ids=["a month: 003", "the term: 001", "the term: 002"])
def test_late_notice_on_a_12_month_term_charges_a_monthly_equivalent_or_the_whole_term(
        pack_name: str, charge: int, effective: datetime, citation: str) -> None:
    """Late notice on a 59.99 USD, 12-month order: late_charge "month" (003 §1.2e) charges
    59.99/12 = 4.999 rounded down to 4.99 and adds one month; "term" (001, 002) charges and adds
    the whole 12-month term. The charge is one line item citing the late clause."""
    d = cancel(pack_name, DUE, product_category="vpn", amount=money(5999), term_months=12)
    assert d.outcome is Outcome.CANCEL_NEXT_PERIOD
    assert d.charge == Money(charge, "USD")
    assert d.effective_at == d.access_until == effective
    assert d.line_items == (LineItem("additional_period", "one more full billing period",
                                     Money(charge, "USD"), citation),)


@pytest.mark.parametrize(("immediate", "tail"), [
    (False, ""), (True, " (an immediate cancellation was asked for)"),
], ids=["not immediate", "immediate asked for"])
def test_a_late_notice_steps_a_due_instant_in_utc_and_notes_the_local_date_and_charge(
        machine_in_st_johns: None, immediate: bool, tail: str) -> None:
    """003 §1.2e, in Tokyo: due 1 March 00:00 UTC (09:00 in Tokyo: an instant, not a date-only
    date), the next period ends 1 April 00:00 UTC, as the provider bills it, whatever the
    machine's zone; the note gives that day on Tokyo's calendar and the charge. A late request
    for immediate effect still follows §1.2e, and the note says it was asked for."""
    due = datetime(2025, 3, 1, 0, 0, tzinfo=UTC)
    d = cancel("theopenhost", due, zone="Asia/Tokyo", due=due,
               request={"immediate": immediate})
    assert d.outcome is Outcome.CANCEL_NEXT_PERIOD
    assert d.effective_at == datetime(2025, 4, 1, 0, 0, tzinfo=UTC)
    assert reasons(d, "003 §1.2e") == [
        (True, "notice too late: takes effect 2025-04-01, one more period charged (120.00 USD)"
               + tail)]


def test_an_immediate_cancellation_ends_access_now_keeps_its_flags_and_says_no_refund() -> None:
    """003 §1.2f: effective and access end at the decision time, the forfeiture flag (§1.9)
    is kept, and the note says the unused part is not refunded."""
    at = DUE - 5 * DAY
    d = cancel("theopenhost", at, request={"immediate": True}, addons=["domain_reseller"])
    assert d.outcome is Outcome.CANCEL_IMMEDIATELY
    assert d.effective_at == d.access_until == at
    assert d.flags == ("domain_reseller_forfeited",)
    assert reasons(d, "003 §1.2f") == [
        (True, "cancelled immediately: no refund of the unused part of the period")]


@pytest.mark.parametrize(("addons", "named"), [
    (["ssl_certificate"], None),
    (["ssl_certificate", "domain_reseller"], "domain_reseller"),
    (["website_templates", "ssl_certificate", "domain_reseller"],
     "domain_reseller, website_templates"),
], ids=["none listed", "one listed", "two listed"])
def test_only_the_orders_own_listed_addons_are_forfeited_and_named(
        addons: list[str], named: str | None) -> None:
    """003 §1.9, with website templates forfeited too: the note names, sorted, the order's add-ons
    that the terms list (not the order's other add-ons, nor listed ones the order lacks); an order
    with none of them has no note and no flag."""
    two = {"addons": ["domain_reseller", "website_templates"], "flag": "domain_reseller_forfeited",
           "clause": "1.9"}
    d = cancel(variant("theopenhost", forfeit=two), DUE - 5 * DAY, addons=addons)
    assert d.outcome is Outcome.CANCEL_AT_PERIOD_END
    if named is None:
        assert d.flags == () and reasons(d, "003 §1.9") == []
    else:
        assert d.flags == ("domain_reseller_forfeited",)
        assert reasons(d, "003 §1.9") == [
            (True, f"{named} suspended on cancellation; funds and domains in it are forfeited")]


def test_a_past_due_balance_is_itemised_and_due_30_days_after_on_the_merchants_calendar(
        machine_in_st_johns: None) -> None:
    """000 §4a, in Tokyo: effective at local midnight on 1 April (31 March 15:00 UTC); the two
    unpaid invoices' 20.00 USD is due 30 days later, 1 May in Tokyo, and is one line item."""
    at = datetime(2025, 3, 3, 3, 0, tzinfo=UTC)
    unpaid = invoices(("A-1", datetime(2025, 2, 1, tzinfo=UTC), False),
                      ("A-2", datetime(2025, 3, 1, tzinfo=UTC), False))
    d = cancel("oneclick", at, zone="Asia/Tokyo", account_invoices=unpaid)
    assert d.outcome is Outcome.CANCEL_AT_PERIOD_END
    assert d.effective_at == datetime(2025, 3, 31, 15, 0, tzinfo=UTC)
    assert d.balance_due_by == datetime(2025, 4, 30, 15, 0, tzinfo=UTC)
    assert d.line_items == (LineItem("past_due_balance", "past-due balance at cancellation",
                                     Money(2000, "USD"), "000 §4a"),)
    assert reasons(d, "000 §4a") == [
        (True, "past-due balance 20.00 USD must be paid by 2025-05-01, then collection begins")]


def test_the_30_days_of_a_past_due_balance_are_calendar_days_across_a_clock_change() -> None:
    """000 §4a, in New York: effective at local midnight on 1 November 2025, when the clocks go
    back two days later. 30 calendar days later is 1 December at local midnight (a day of 25
    hours is still one day), not 30 x 24 hours later (30 November, 23:00)."""
    at = datetime(2025, 10, 3, 15, 0, tzinfo=UTC)
    unpaid = invoices(("A-1", datetime(2025, 9, 1, tzinfo=UTC), False))
    d = cancel("oneclick", at, zone="America/New_York", account_invoices=unpaid)
    assert d.effective_at == datetime(2025, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT
    assert d.balance_due_by == datetime(2025, 12, 1, 5, 0, tzinfo=UTC)  # 00:00 EST
    assert "must be paid by 2025-12-01" in reasons(d, "000 §4a")[0][1]


def test_the_access_note_names_the_instant_access_ends() -> None:
    """001 §2.b: access continues to the end of the current cycle, the instant given in full."""
    d = cancel("digitalcare", DUE - 5 * DAY)
    assert d.access_until == DUE
    assert reasons(d, "001 §2.b") == [(True, "access continues until 2025-04-01T09:00:00+00:00")]


@pytest.mark.parametrize(("auto_renew", "detail"), [
    (True, "automatic renewal turned off; the subscription is not extended"),
    (False, "automatic renewal was not selected; nothing is extended"),
], ids=["auto-renewing", "not auto-renewing"])
def test_the_auto_renewal_note_says_whether_renewal_was_turned_off(auto_renew: bool,
                                                                   detail: str) -> None:
    """002 cancel.1: an auto-renewing subscription has renewal turned off; one without it is
    simply not extended."""
    d = cancel("cloudbehind", DUE - 5 * DAY, product_category="vpn", auto_renew=auto_renew)
    assert d.outcome is Outcome.CANCEL_AT_PERIOD_END
    assert reasons(d, "002 §cancel.1") == [(True, detail)]


@pytest.mark.parametrize(("verified", "outcome", "holds", "detail"), [
    (True, Outcome.CANCEL_AT_PERIOD_END, True, "credentials verified"),
    (None, Outcome.NEEDS_REVIEW, False, "credentials not yet verified"),
    (False, Outcome.CANCEL_BLOCKED, False, "credentials failed verification"),
], ids=["verified", "not yet verified", "failed verification"])
def test_the_credentials_check_is_the_only_identity_reason_and_names_the_state(
        verified: bool | None, outcome: Outcome, holds: bool, detail: str) -> None:
    """000 §1a asks for verified credentials and no other detail: one reason, saying whether
    they were verified, not yet verified or failed."""
    d = cancel("oneclick", datetime(2025, 3, 3, tzinfo=UTC),
               request={"identity": identity(verified=verified)})
    assert d.outcome is outcome
    assert reasons(d, "000 §1a") == [(holds, detail)]


@pytest.mark.parametrize(("number", "account_invoices", "holds", "detail"), [
    ("INV-3", PAID, True, "invoice INV-3 is one of the last 3 (INV-3, INV-2, INV-1)"),
    ("INV-0", PAID, False, "invoice INV-0 is not one of the last 3 (INV-3, INV-2, INV-1)"),
    ("INV-3", [], False, "invoice INV-3 is not one of the last 3 (none on file)"),
], ids=["a recent number", "an older number", "no invoice on file"])
def test_the_invoice_number_check_names_the_latest_numbers_on_file(
        number: str, account_invoices: list[dict[str, Any]], holds: bool, detail: str) -> None:
    """003 §1.2: the number given is checked against the last 3 invoices, newest first, which the
    reason lists (or says there are none)."""
    d = cancel("theopenhost", DUE - 5 * DAY, account_invoices=account_invoices,
               request={"identity": identity(invoice_number=number)})
    assert reasons(d, "003 §1.2") == [(True, "all required details given"), (holds, detail)]


@pytest.mark.parametrize(("number", "verified", "failing"), [
    ("INV-3", True, {"003 §1.2c"}),
    ("INV-1", True, {"003 §1.2", "003 §1.2a", "003 §1.2c"}),
    ("INV-3", False, {"003 §1.2", "003 §1.2a", "003 §1.2c"}),
], ids=["identified", "an older invoice number", "credentials failed verification"])
def test_the_procedure_clause_is_cited_only_when_identification_failed(
        number: str, verified: bool, failing: set[str]) -> None:
    """Terms asking only for a recent invoice number and verified credentials (no other detail):
    an account blocked by a due invoice alone was still identified, so 1.2a is cited, saying the
    account stays open, only when either identity check fails."""
    rule = {"invoice_in_last": 3, "verified_required": True, "clause": "1.2",
            "procedure_clause": "1.2a"}
    unpaid = PAID + invoices(("INV-4", DUE - 10 * DAY, False))
    d = cancel(variant("theopenhost", identity=rule), DUE - 5 * DAY, account_invoices=unpaid,
               request={"identity": identity(invoice_number=number, verified=verified)})
    assert d.outcome is Outcome.CANCEL_BLOCKED
    assert failed(d) == failing
    if "003 §1.2a" in failing:
        assert reasons(d, "003 §1.2a") == [
            (False, "the cancellation procedure was not followed: the account stays open")]


@pytest.mark.parametrize(("reason", "outcome", "holds", "detail"), [
    ("it does not suit me", Outcome.CANCEL_AT_PERIOD_END, True, "all required details given"),
    (" ", Outcome.CANCEL_BLOCKED, False, "missing: reason"),
], ids=["a reason given", "no reason"])
def test_terms_that_require_a_reason_accept_the_one_the_request_gives(
        reason: str, outcome: Outcome, holds: bool, detail: str) -> None:
    """Cancellation terms that ask for the user name and a reason (as CloudBehind's refunds do,
    new.3): the request's reason is the one checked."""
    rule = {"require": [["username"]], "reason_required": True, "clause": "new.3"}
    d = cancel(variant("cloudbehind", identity=rule), DUE - 5 * DAY, product_category="vpn",
               request={"reason": reason})
    assert d.outcome is outcome
    assert reasons(d, "002 §new.3") == [(holds, detail)]


@pytest.mark.parametrize(("unpaid", "holds", "detail"), [
    ((), True, "no invoice is due or overdue"),
    (("INV-4", "INV-5"), False, "unpaid invoices due: INV-4, INV-5"),
], ids=["none due", "two due"])
def test_the_outstanding_invoice_check_lists_every_invoice_due(
        unpaid: tuple[str, ...], holds: bool, detail: str) -> None:
    """003 §1.2c: the check holds when nothing is due and otherwise names each unpaid invoice
    whose due date has arrived."""
    at = DUE - 5 * DAY
    d = cancel("theopenhost", at, account_invoices=PAID + invoices(
        *[(n, at - (2 - i) * DAY, False) for i, n in enumerate(unpaid)]))
    assert reasons(d, "003 §1.2c") == [(holds, detail)]


def test_a_case_built_without_an_order_goes_to_review_citing_the_notice_clause() -> None:
    """A Case built in code may lack the order (JSON cases must give one): the notice rule
    needs it, so the decision is needs_review citing 003 §1.2d and naming the missing fact."""
    data = case("cancellation", DUE, order=order(next_billing_at=DUE.isoformat()))
    without = dataclasses.replace(case_from_json(data), order=None)
    d = evaluate(pack("theopenhost"), without, DUE)
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert [(r.clause, r.holds, r.detail) for r in d.reasons] == [
        ("003 §1.2d", False, "the case does not give order, which this clause needs")]
