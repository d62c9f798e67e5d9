"""A late fee: rounded the way the pack says (theopenhost: down), itemised, explained, with its
notes."""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import timedelta
from importlib import resources

from policy import Decision, LineItem, Outcome, Pack, case_from_json, evaluate, load_pack
from policy.money import Money
from policy.pack import parse_pack

from .builders import T0, case, decide, iso, money
from .test_theopenhost_billing import overdue, overpayment


def _late(amount: int):
    invoice = {"number": "INV-9", "amount": money(amount), "due_at": iso(T0), "paid": False,
               "notified_at": iso(T0 - timedelta(days=10))}
    data = case("overdue_invoice", T0, request_extra={"invoice_number": "INV-9"})
    data["account"] = {"invoices": [invoice]}
    return decide("theopenhost", data, now=T0 + timedelta(days=2))


def test_a_late_fee_share_with_a_large_fraction_is_rounded_down():
    """35% of $14.34 is 501.9 cents: theopenhost's fee_rounding (ROUND_DOWN) charges 501."""
    d = _late(1434)
    assert d.outcome is Outcome.LATE_FEE
    assert d.fee.amount == 501


def test_a_late_fee_is_itemised_and_its_arithmetic_shown():
    """The fee is one line item citing the floor clause, whose reason shows the arithmetic."""
    d = _late(1434)
    assert d.effective_at == T0 + timedelta(hours=24)  # overdue from the end of the grace period
    assert d.flags == ("support_withheld",)  # not in collection: no collection note or flag
    assert "003 §1.3a" not in [r.clause for r in d.reasons]
    assert d.line_items == (LineItem("late_fee", "late fee on invoice INV-9", Money(501, "USD"),
                                     "003 §1.5"),)
    assert ("003 §1.5", True, "35% of 14.34 USD is 5.01 USD; minimum 5.00 USD; late fee 5.01 USD"
            ) in [(r.clause, r.holds, r.detail) for r in d.reasons]


def test_late_fee_notes_say_support_is_withheld_and_what_collection_may_add():
    """The support and collection notes are reasons: withheld support, the cap or its absence."""
    data = tomllib.loads(resources.files("policy").joinpath("packs/theopenhost.toml").read_text())
    data["late_fee"]["floor"]["EUR"] = 500  # a floor in EUR, but the collection cap only in USD
    pack = parse_pack("theopenhost", data)

    def notes(currency: str) -> list[tuple[str, bool, str]]:
        invoice = {"number": "INV-9", "amount": money(10000, currency), "due_at": iso(T0),
                   "paid": False, "notified_at": iso(T0 - timedelta(days=10))}
        case_data = case("overdue_invoice", T0, request_extra={"invoice_number": "INV-9"})
        case_data["account"] = {"invoices": [invoice], "in_collection": True}
        d = evaluate(pack, case_from_json(case_data), T0 + timedelta(days=2))
        assert d.outcome is Outcome.LATE_FEE
        assert d.flags == ("support_withheld", "debt_collection")
        return [(r.clause, r.holds, r.detail) for r in d.reasons
                if r.clause in ("003 §1.4", "003 §1.3a")]

    tail = " may be applied at the merchant's discretion (not charged here)"
    assert notes("USD") == [
        ("003 §1.4", True, "no support while the bill is overdue"),
        ("003 §1.3a", True, "passed to debt collection: a fee of up to 150.00 USD" + tail)]
    assert notes("EUR")[1] == (
        "003 §1.3a", True,
        "passed to debt collection: a fee of up to (no EUR cap configured)" + tail)


DAY = timedelta(days=1)
SECOND = timedelta(seconds=1)


def _reasons(d: Decision) -> list[tuple[str, bool, str]]:
    return [(r.clause, r.holds, r.detail) for r in d.reasons]


def _bare_pack() -> Pack:
    """theopenhost without the notice, support and collection terms of the late fee, with
    overpayments from any PayPal payment, no fee on credit and no credit note."""
    data = tomllib.loads(resources.files("policy").joinpath("packs/theopenhost.toml").read_text())
    for key in ("notice", "support_withheld", "collection_fee_cap"):
        del data["late_fee"][key]
    data["overpayment"].update(require_subscription=False, fee_on_credit=False)
    del data["overpayment"]["credit_note_clause"]
    return parse_pack("bare", data)


def test_a_paid_invoice_needs_no_action_and_says_it_is_paid():
    """1.6: a paid invoice is not overdue; nothing charged, no dates, no flags."""
    d = decide("theopenhost", overdue(paid=True), now=T0 + 9 * DAY)
    assert (d.outcome, d.fee, d.effective_at, d.flags, d.line_items) == (
        Outcome.NO_ACTION, Money(0, "USD"), None, (), ())
    assert _reasons(d) == [("003 §1.6", False, "invoice INV-9 is paid")]


def test_a_zero_invoice_says_nothing_is_owed():
    """1.5: a 0.00 USD invoice is never late; the reason shows the amount."""
    d = decide("theopenhost", overdue(amount=0), now=T0 + 9 * DAY)
    assert (d.outcome, d.fee, d.effective_at) == (Outcome.NO_ACTION, Money(0, "USD"), None)
    assert _reasons(d) == [
        ("003 §1.5", False, "invoice INV-9 is for 0.00 USD: nothing is owed, so no late fee")]


def test_an_invoice_not_yet_overdue_says_when_it_will_be():
    """A second short of the 24 hours of grace: no action, effective when the grace ends."""
    d = decide("theopenhost", overdue(), now=T0 + DAY - SECOND)
    assert (d.outcome, d.fee, d.effective_at, d.flags) == (
        Outcome.NO_ACTION, Money(0, "USD"), T0 + DAY, ())
    assert _reasons(d) == [("003 §1.6", False, "0d 23:59:59 since the due date "
                            "(overdue from 24h)")]


def test_a_charge_notified_late_goes_to_review_showing_the_lead():
    """1.14b: notified a second short of 10 days ahead; a person decides, nothing charged."""
    d = decide("theopenhost", overdue(notified=10 * DAY - SECOND), now=T0 + 2 * DAY)
    assert (d.outcome, d.fee, d.effective_at, d.line_items) == (
        Outcome.NEEDS_REVIEW, Money(0, "USD"), T0 + DAY, ())
    assert _reasons(d) == [
        ("003 §1.6", True, "2d 00:00:00 since the due date (overdue from 24h)"),
        ("003 §1.14b", False, "notified 9d 23:59:59 before the due date (needs 10d 00:00:00)")]


def test_a_charge_with_no_notification_date_goes_to_review_saying_so():
    """1.14b cannot be checked without the notification date."""
    d = decide("theopenhost", overdue(notified=None), now=T0 + 2 * DAY)
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert _reasons(d)[1:] == [
        ("003 §1.14b", False, "the case does not say when the charge was notified")]


def test_a_late_fee_without_a_floor_in_the_currency_goes_to_review_naming_it():
    """1.5 states its minimum in USD: a EUR invoice is reviewed, not converted."""
    d = decide("theopenhost", overdue(currency="EUR"), now=T0 + 2 * DAY)
    assert (d.outcome, d.fee, d.effective_at) == (
        Outcome.NEEDS_REVIEW, Money(0, "EUR"), T0 + DAY)
    assert _reasons(d) == [
        ("003 §1.6", True, "2d 00:00:00 since the due date (overdue from 24h)"),
        ("003 §1.14b", True, "notified 10d 00:00:00 before the due date (needs 10d 00:00:00)"),
        ("003 §1.5", False, "no EUR minimum late fee is configured (the policy states USD); "
         "not converting")]


def test_a_late_fee_in_collection_is_explained_clause_by_clause():
    """35% of 100.00 is 35.00, above the 5.00 floor; support withheld (1.4) and the collection
    cap noted (1.3a); nothing at stake, nothing retained."""
    d = decide("theopenhost", overdue(amount=10000, in_collection=True), now=T0 + 2 * DAY)
    assert (d.outcome, d.at_stake, d.fee, d.retained, d.charge) == (
        Outcome.LATE_FEE, None, Money(3500, "USD"), Money(0, "USD"), Money(0, "USD"))
    assert d.flags == ("support_withheld", "debt_collection")
    assert d.line_items == (LineItem("late_fee", "late fee on invoice INV-9",
                                     Money(3500, "USD"), "003 §1.5"),)
    assert _reasons(d) == [
        ("003 §1.6", True, "2d 00:00:00 since the due date (overdue from 24h)"),
        ("003 §1.14b", True, "notified 10d 00:00:00 before the due date (needs 10d 00:00:00)"),
        ("003 §1.5", True, "35% of 100.00 USD is 35.00 USD; minimum 5.00 USD; late fee 35.00 USD"),
        ("003 §1.4", True, "no support while the bill is overdue"),
        ("003 §1.3a", True, "passed to debt collection: a fee of up to 150.00 USD may be "
         "applied at the merchant's discretion (not charged here)")]


def test_a_pack_without_notice_support_or_collection_terms_charges_the_bare_fee():
    """No notice term: an unknown notification date does not matter; no support or collection
    notes or flags even for an account in collection."""
    d = evaluate(_bare_pack(), case_from_json(overdue(notified=None, in_collection=True)),
                 T0 + 2 * DAY)
    assert (d.outcome, d.fee, d.flags) == (Outcome.LATE_FEE, Money(500, "USD"), ())
    assert _reasons(d) == [
        ("003 §1.6", True, "2d 00:00:00 since the due date (overdue from 24h)"),
        ("003 §1.5", True, "35% of 10.00 USD is 3.50 USD; minimum 5.00 USD; late fee 5.00 USD")]


def test_a_fresh_overpayment_is_refunded_less_the_fee_with_each_check_explained():
    """1.7b/1.7d: a day-old PayPal subscription overpayment of 10.00: 9.50 back, the 0.50 fee
    itemised and retained."""
    d = decide("theopenhost", overpayment(T0, T0 + DAY), now=T0 + DAY)
    assert (d.outcome, d.at_stake, d.refund, d.credit, d.fee, d.retained, d.flags) == (
        Outcome.PARTIAL_REFUND, Money(1000, "USD"), Money(950, "USD"), Money(0, "USD"),
        Money(50, "USD"), Money(50, "USD"), ())
    assert d.line_items == (LineItem("administration_fee", "overpayment administration fee",
                                     Money(50, "USD"), "003 §1.7d"),)
    assert _reasons(d) == [
        ("003 §1.7b", True, "paid via paypal (covered: paypal)"),
        ("003 §1.7b", True, "from a subscription not cancelled"),
        ("003 §1.7b", True, "payment is 1d 00:00:00 old at the request "
         "(refundable up to 45d 00:00:00)"),
        ("003 §1.7d", True, "5% administration fee: 0.50 USD")]


def test_an_overpayment_whose_fee_rounds_to_nothing_is_refunded_in_full():
    """5% of 0.19 is 0.0095, rounded down to 0: a full refund with no fee line item."""
    d = decide("theopenhost", overpayment(T0, T0 + DAY, over=19), now=T0 + DAY)
    assert (d.outcome, d.refund, d.fee, d.retained, d.line_items) == (
        Outcome.FULL_REFUND, Money(19, "USD"), Money(0, "USD"), Money(0, "USD"), ())
    assert _reasons(d)[-1] == ("003 §1.7d", True, "5% administration fee: 0.00 USD")


def test_an_old_overpayment_becomes_non_refundable_credit_less_the_fee():
    """1.7c/1.8: 46 days old: 9.50 as account credit, flagged not refundable, with the notes."""
    d = decide("theopenhost", overpayment(T0, T0 + 46 * DAY), now=T0 + 46 * DAY)
    assert (d.outcome, d.at_stake, d.refund, d.credit, d.fee, d.retained, d.flags) == (
        Outcome.ACCOUNT_CREDIT, Money(1000, "USD"), Money(0, "USD"), Money(950, "USD"),
        Money(50, "USD"), Money(50, "USD"), ("credit_not_refundable",))
    assert len(d.line_items) == 1 and d.line_items[0].amount == Money(50, "USD")
    assert _reasons(d)[2:] == [
        ("003 §1.7b", False, "payment is 46d 00:00:00 old at the request "
         "(refundable up to 45d 00:00:00)"),
        ("003 §1.7d", True, "5% administration fee: 0.50 USD"),
        ("003 §1.7c", True, "older than the refund window: added as account credit"),
        ("003 §1.8", True, "account credit is not refundable")]


def test_an_overpayment_outside_a_paypal_subscription_goes_to_review_naming_both():
    """1.7b: paid via Stripe and not from a subscription: reviewed, the whole amount at stake."""
    d = decide("theopenhost", overpayment(T0, T0 + DAY, provider="stripe", subscription=False),
               now=T0 + DAY)
    assert (d.outcome, d.at_stake, d.refund, d.fee, d.retained) == (
        Outcome.NEEDS_REVIEW, Money(1000, "USD"), Money(0, "USD"), Money(0, "USD"),
        Money(1000, "USD"))
    assert _reasons(d) == [
        ("003 §1.7b", False, "paid via stripe (covered: paypal)"),
        ("003 §1.7b", False, "not from a subscription: no clause covers it")]


def test_an_overpayment_from_an_unknown_provider_goes_to_review_saying_so():
    """A payment without a provider cannot be shown to be PayPal's."""
    data = overpayment(T0, T0 + DAY)
    del data["payment"]["provider"]
    d = decide("theopenhost", data, now=T0 + DAY)
    assert d.outcome is Outcome.NEEDS_REVIEW
    assert _reasons(d)[0] == ("003 §1.7b", False, "paid via unknown provider (covered: paypal)")


def test_without_a_fee_on_credit_an_old_overpayment_is_credited_in_full():
    """fee_on_credit off, no credit note, no subscription needed: 46 days old, all 10.00 as
    credit, no fee, no line item, no 1.8 note."""
    data = overpayment(T0, T0 + 46 * DAY, subscription=False)
    d = evaluate(_bare_pack(), case_from_json(data), T0 + 46 * DAY)
    assert (d.outcome, d.credit, d.fee, d.retained, d.line_items, d.flags) == (
        Outcome.ACCOUNT_CREDIT, Money(1000, "USD"), Money(0, "USD"), Money(0, "USD"), (),
        ("credit_not_refundable",))
    assert [r[0] for r in _reasons(d)] == ["003 §1.7b", "003 §1.7b", "003 §1.7d", "003 §1.7c"]


def test_without_a_fee_on_credit_a_fresh_overpayment_still_pays_the_fee():
    """fee_on_credit off changes only credits: a fresh refund still pays the 5% fee."""
    data = overpayment(T0, T0 + DAY, subscription=False)
    d = evaluate(_bare_pack(), case_from_json(data), T0 + DAY)
    assert (d.outcome, d.refund, d.fee) == (
        Outcome.PARTIAL_REFUND, Money(950, "USD"), Money(50, "USD"))


def test_a_late_fee_for_an_invoice_the_case_does_not_hold_goes_to_review_naming_it():
    """The request names INV-404, the account holds no such invoice: a person decides, citing
    the overdue clause and naming the missing invoice."""
    data = case("overdue_invoice", T0, request_extra={"invoice_number": "INV-404"})
    d = decide("theopenhost", data)
    assert d.outcome is Outcome.NEEDS_REVIEW
    (reason,) = d.reasons
    assert not reason.holds
    assert reason.clause == "003 §1.6"  # the late-fee clause: an invoice not paid when due
    assert reason.detail == ("the case does not give account.invoices[number=INV-404], which "
                             "this clause needs")


def test_an_overpayment_case_without_its_payment_goes_to_review_citing_the_refund_clause():
    """A Case built in code with no payment: 1.7b needs it, so a person decides, the reason
    naming the missing fact, with nothing at stake."""
    data = overpayment(T0, T0 + timedelta(days=1))
    without = dataclasses.replace(case_from_json(data), payment=None)
    d = evaluate(load_pack("theopenhost"), without, T0 + timedelta(days=1))
    assert (d.outcome, d.at_stake) == (Outcome.NEEDS_REVIEW, None)
    assert [(r.clause, r.holds, r.detail) for r in d.reasons] == [
        ("003 §1.7b", False, "the case does not give payment, which this clause needs")]


def test_a_zero_floor_lets_a_late_fee_share_that_rounds_to_nothing_be_nothing():
    """A pack whose late-fee minimum is 0.00 USD: 35% of a 0.01 USD invoice rounds down to
    nothing, and nothing is charged (the greater of the share and the floor is 0)."""
    data = tomllib.loads(resources.files("policy").joinpath("packs/theopenhost.toml").read_text())
    data["late_fee"]["floor"]["USD"] = 0
    invoice = {"number": "INV-9", "amount": money(1), "due_at": iso(T0), "paid": False,
               "notified_at": iso(T0 - timedelta(days=10))}
    claim = case("overdue_invoice", T0, request_extra={"invoice_number": "INV-9"})
    claim["account"] = {"invoices": [invoice]}
    d = evaluate(parse_pack("zero-floor", data), case_from_json(claim), T0 + 2 * DAY)
    assert d.fee == Money(0, "USD")
