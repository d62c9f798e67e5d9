"""The clause a decision rests on (``Decision.basis``): the one the worker cites on the refund,
the credit or the cancellation that carries the decision out, and the finance reports total by.

Where money moves or a date is set, the rule names the clause granting it, which is often not
the first clause the case satisfies: an overpayment turned into account credit rests on 003
§1.7c, not on §1.7b that it fails; an uptime credit on the schedule of §1.12a or §1.12b, not
on the 72-hour claim rule of §1.13 it meets first.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from datetime import timedelta
from importlib import resources
from typing import Any

import pytest

from policy import Outcome, Pack, case_from_json, evaluate
from policy.decision import Reason
from policy.pack import parse_pack
from policy.verdict import default_basis

from .builders import NOW, T0, decide, money, order
from .test_cloudbehind import renewal, vpn_refund
from .test_oneclick_and_digitalcare import service_refund
from .test_theopenhost_billing import overdue, overpayment
from .test_theopenhost_cancellation import DUE, cancellation
from .test_theopenhost_uptime import claim

DAY = timedelta(days=1)
HOUR = timedelta(hours=1)


def test_a_recent_overpayment_is_refunded_under_1_7b() -> None:
    d = decide("theopenhost", overpayment(T0, T0 + 45 * DAY), now=T0 + 45 * DAY)
    assert (d.outcome, d.basis) == (Outcome.PARTIAL_REFUND, "003 §1.7b")


def test_a_refunded_overpayment_rests_on_the_refund_clause_not_the_first_clause_it_meets(
        ) -> None:
    """A pack whose overpayment rule cites another clause for the providers it covers (here
    1.8) still grants the refund under its refund clause (1.7b)."""
    pack = _variant("theopenhost", lambda d: d["overpayment"].update(clause="1.8"))
    d = evaluate(pack, case_from_json(overpayment(T0, T0 + DAY)), T0 + DAY)
    assert d.reasons[0].clause == "003 §1.8"
    assert (d.outcome, d.basis) == (Outcome.PARTIAL_REFUND, "003 §1.7b")


def _variant(name: str, change: Callable[[dict[str, Any]], Any]) -> Pack:
    data = tomllib.loads(resources.files("policy").joinpath(f"packs/{name}.toml")
                         .read_text(encoding="utf-8"))
    change(data)
    return parse_pack(name, data)


def test_a_service_refund_rests_on_its_window_even_when_the_claim_is_exempt_from_it() -> None:
    """001 with a reason exempt from the window (a variant): the refund is still granted under
    the window clause (§1), not the clause of the service's state met first (§3)."""
    pack = _variant("digitalcare", lambda d: d["service_refund"].update(
        window_exempt=["billing_error", "dissatisfied"]))
    d = evaluate(pack, case_from_json(service_refund(30, "dissatisfied", state="not_started")),
                 T0 + 30 * DAY)
    assert d.reasons[0].clause == "001 §3"
    assert (d.outcome, d.basis) == (Outcome.FULL_REFUND, "001 §1")


def test_a_guarantee_with_neither_grant_nor_covered_products_rests_on_its_window() -> None:
    """002 without its grant sentences (a variant): a new order's refund rests on the claim
    window (§new.1), the guarantee naming no products it covers."""
    pack = _variant("cloudbehind", lambda d: [g.pop("grant_clause") for g in d["guarantee"]])
    assert evaluate(pack, case_from_json(vpn_refund()), NOW).basis == "002 §new.1"


def test_an_old_overpayment_is_credited_under_1_7c_not_the_1_7b_it_fails() -> None:
    d = decide("theopenhost", overpayment(T0, T0 + 46 * DAY), now=T0 + 46 * DAY)
    assert (d.outcome, d.credit.amount, d.basis) == (Outcome.ACCOUNT_CREDIT, 950, "003 §1.7c")


@pytest.mark.parametrize(("category", "clause"), [
    ("web_hosting", "003 §1.12a"), ("reseller_hosting", "003 §1.12a"),
    ("vps", "003 §1.12b"), ("dedicated_server", "003 §1.12b"),
])
def test_an_uptime_credit_rests_on_its_products_schedule(category: str, clause: str) -> None:
    d = decide("theopenhost", claim("98", category), now=T0 + HOUR)
    assert (d.outcome, d.basis) == (Outcome.SERVICE_CREDIT, clause)
    assert d.reasons[0].clause == "003 §1.13"  # met first, and not what grants the credit


def test_a_met_uptime_guarantee_rests_on_the_guarantee() -> None:
    """Nothing is owed because §1.11 was met, not because of the claim rule met first."""
    d = decide("theopenhost", claim("99.95"), now=T0 + HOUR)
    assert (d.outcome, d.basis) == (Outcome.NO_ACTION, "003 §1.11")


def test_a_late_fee_rests_on_the_fee_clause_and_an_invoice_not_yet_late_on_overdue() -> None:
    d = decide("theopenhost", overdue(), now=T0 + 2 * DAY)
    assert (d.outcome, d.basis) == (Outcome.LATE_FEE, "003 §1.5")
    d = decide("theopenhost", overdue(), now=T0 + HOUR)
    assert (d.outcome, d.basis) == (Outcome.NO_ACTION, "003 §1.6")


def test_a_guarantee_refund_rests_on_the_clause_offering_the_guarantee() -> None:
    """002 grants it in the sentence before its conditions ("You are entitled to a full refund
    on a new order if..."), 003 §1.1 offers it for the products it names; never by a condition
    or exclusion the case passes (002 §renewal.5)."""
    d = decide("theopenhost", {"request": {"kind": "refund", "received_at": "2025-03-03T09:00:00Z",
                                           "reason": "it does not suit me",
                                           "identity": {"username": "alice"}},
                               "account": {}, "order": order(addons=["ssl_certificate"])})
    assert (d.outcome, d.basis) == (Outcome.PARTIAL_REFUND, "003 §1.1")
    assert decide("cloudbehind", vpn_refund()).basis == "002 §new.grant"
    d = decide("cloudbehind", renewal())
    assert (d.outcome, d.basis) == (Outcome.FULL_REFUND, "002 §renewal.grant")
    assert d.reasons[0].clause == "002 §renewal.5"


def test_a_refund_of_a_service_not_yet_started_rests_on_its_window() -> None:
    d = decide("digitalcare", service_refund(1, state="not_started"))
    assert (d.outcome, d.basis) == (Outcome.FULL_REFUND, "001 §1")


@pytest.mark.parametrize(("before", "immediate", "outcome", "clause"), [
    (3 * DAY, False, Outcome.CANCEL_AT_PERIOD_END, "003 §1.2d"),
    (DAY, False, Outcome.CANCEL_NEXT_PERIOD, "003 §1.2e"),
    (3 * DAY, True, Outcome.CANCEL_IMMEDIATELY, "003 §1.2f"),
], ids=["on time", "too late", "immediately"])
def test_a_cancellation_rests_on_the_clause_that_sets_its_date(
        before: timedelta, immediate: bool, outcome: Outcome, clause: str) -> None:
    d = decide("theopenhost", cancellation(DUE - before, immediate=immediate), now=DUE - before)
    assert (d.outcome, d.basis) == (outcome, clause)


def test_a_refund_held_back_by_the_gateway_rests_on_the_gateways_rule() -> None:
    """The policy grants it, but less is left of the payment than it grants: the review cites
    the gateway's bound, not the policy's clause."""
    data = vpn_refund()
    data["order"]["refundable"] = money(1000)
    d = decide("cloudbehind", data)
    assert (d.outcome, d.basis) == (Outcome.NEEDS_REVIEW, "gateway: refundable remainder")


def test_a_denial_rests_on_the_first_clause_the_case_fails() -> None:
    d = decide("cloudbehind", renewal(at_day=15))
    assert (d.outcome, d.basis) == (Outcome.DENY, "002 §renewal.1")


HOLDS = Reason("A", "", True, "")
FAILS = Reason("B", "", False, "")
FAILS_TOO = Reason("C", "", False, "")


@pytest.mark.parametrize(("outcome", "reasons", "basis"), [
    (Outcome.DENY, (HOLDS, FAILS, FAILS_TOO), "B"),
    (Outcome.NEEDS_REVIEW, (HOLDS, FAILS), "B"),
    (Outcome.CANCEL_BLOCKED, (HOLDS, FAILS), "B"),
    (Outcome.NEEDS_REVIEW, (HOLDS,), "A"),
    (Outcome.NO_ACTION, (FAILS, HOLDS), "A"),
    (Outcome.FULL_REFUND, (FAILS, HOLDS), "A"),
    (Outcome.NO_ACTION, (FAILS, FAILS_TOO), "B"),
    (Outcome.DENY, (HOLDS,), "A"),
    (Outcome.DENY, (), None),
    (Outcome.NO_ACTION, (), None),
])
def test_without_a_named_clause_the_basis_is_the_first_that_decides(
        outcome: Outcome, reasons: tuple[Reason, ...], basis: str | None) -> None:
    """An adverse outcome (deny, review, blocked cancellation) rests on the first clause failed,
    any other on the first satisfied; without one of that kind, on the first clause; without
    reasons, on none."""
    assert default_basis(outcome, reasons) == basis
