"""Money that must move exactly once: a resumed Stripe refund, credit grants, how a decision
settles, snapshots of one second, and where a PayPal overpayment begins."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from flask.testing import FlaskClient
from sqlalchemy import select

from adapters import ledger_credit
from ledger.models import (
    AccountCredit,
    Action,
    ActionStatus,
    Decision,
    DecisionStatus,
    Invoice,
    Refund,
    Subscription,
)
from policy.money import Money
from sandbox import samples
from service.bootstrap import Container
from tests.support import cases
from tests.support.delivery import deliver, run_worker
from tests.support.paypal import shared_signer
from tests.support.providers import stripe_balance_answered
from workers.actions import run_action
from workers.decide import decide
from workers.reviews import answer

STRIPE_REFUNDS = "https://api.stripe.com/v1/refunds"
MERCHANT = "theopenhost"


def _charge(client: FlaskClient, container: Container, key: str, amount: int = 12000,
            currency: str = "usd") -> str:
    scenario = samples.Scenario(key=key, amount=amount, currency=currency)
    deliver(client, "stripe", samples.stripe_event("charge.succeeded", scenario))
    run_worker(container)
    return scenario.charge_id


def _actions(container: Container, decision_id: str) -> dict[str, Action]:
    with container.sessions() as s:
        return {a.kind: a for a in s.scalars(select(Action).where(
            Action.decision_id == decision_id))}


def _decision_status(container: Container, decision_id: str) -> str:
    with container.sessions() as s:
        decision = s.get(Decision, decision_id)
        assert decision is not None
        return decision.status


# --- A resumed Stripe refund finds its own refund, never someone else's ---------------------------


def _refund(refund_id: str, charge: str, amount: int, action_id: str | None) -> dict[str, Any]:
    return {"id": refund_id, "object": "refund", "amount": amount, "charge": charge,
            "currency": "usd", "status": "succeeded",
            "metadata": {} if action_id is None else {"action_id": action_id}}


def _serve_refund_pages(pages: list[list[dict[str, Any]]]) -> None:
    """Answer GET /v1/refunds as Stripe does, one page at a time: ``starting_after`` names the
    last refund of the page before, and ``has_more`` says whether another page follows."""
    def page(request):
        after = parse_qs(urlsplit(request.url).query).get("starting_after", [None])[0]
        index = 0 if after is None else 1 + next(
            i for i, p in enumerate(pages) if p and p[-1]["id"] == after)
        body = {"object": "list", "url": "/v1/refunds", "has_more": index < len(pages) - 1,
                "data": pages[index]}
        return 200, {}, json.dumps(body)

    responses.add_callback(responses.GET, STRIPE_REFUNDS, callback=page)


def _interrupted_refund(client: FlaskClient, container: Container, key: str) -> tuple[str, str]:
    """A guarantee refund (110.00) of a 120.00 charge whose first attempt died mid-call."""
    charge = _charge(client, container, key)
    decide(container, MERCHANT, cases.guarantee_claim(12000, addons=("ssl_certificate",)),
           payment_ref=charge, account_ref="cus_1", now=cases.DECIDED_AT)
    with container.sessions() as s, s.begin():  # as a worker killed during its POST leaves it
        action = s.scalars(select(Action)).one()
        action.status, action.attempts = ActionStatus.EXECUTING, 1
        return charge, action.id


def _posts(calls: Any) -> list[Any]:
    return [c.request for c in calls if c.request.method == "POST"]


@responses.activate
def test_a_resumed_refund_does_not_adopt_refunds_it_did_not_make(client, container):
    """Other refunds of the charge (no action id, another one) are not ours: one POST is made."""
    charge, action_id = _interrupted_refund(client, container, "resume-foreign")
    _serve_refund_pages([[_refund("re_dashboard", charge, 300, None)],
                         [_refund("re_someone_else", charge, 200, "act_someone_else")]])
    responses.post(STRIPE_REFUNDS, json=_refund("re_ours", charge, 11000, action_id))

    assert run_action(container, action_id) == ActionStatus.SUCCEEDED
    (post,) = _posts(responses.calls)
    assert post.headers["Idempotency-Key"] == action_id
    assert parse_qs(post.body)["amount"] == ["11000"]
    with container.sessions() as s:
        assert s.get(Action, action_id).provider_ref == "re_ours"
        refunds = {r.provider_id: r.action_id for r in s.scalars(select(Refund))}
    assert refunds == {"re_ours": action_id}


@responses.activate
def test_a_resumed_refund_picks_its_own_among_others_on_the_page(client, container):
    """Listed after a stranger's refund, ours (by its action id) is the one taken: no POST."""
    charge, action_id = _interrupted_refund(client, container, "resume-mixed")
    _serve_refund_pages([[_refund("re_dashboard", charge, 300, None),
                          _refund("re_ours", charge, 11000, action_id)]])

    assert run_action(container, action_id) == ActionStatus.SUCCEEDED
    assert _posts(responses.calls) == []
    with container.sessions() as s:
        assert s.get(Action, action_id).provider_ref == "re_ours"


@responses.activate
def test_a_resumed_refund_finds_its_own_on_a_later_page(client, container):
    """A charge with many refunds lists ours on page 2: it is still found, and no POST is made."""
    charge, action_id = _interrupted_refund(client, container, "resume-page-2")
    _serve_refund_pages([[_refund("re_dashboard", charge, 300, None)],
                         [_refund("re_ours", charge, 11000, action_id)]])

    assert run_action(container, action_id) == ActionStatus.SUCCEEDED
    assert _posts(responses.calls) == []
    with container.sessions() as s:
        assert s.get(Action, action_id).provider_ref == "re_ours"


# --- Account credit is granted once per action ----------------------------------------------------


def _credit_decision(container: Container) -> tuple[str, Action]:
    """An overpayment 46 days old: 9.50 of account credit (10.00 less the 5% fee)."""
    decision_id = decide(container, MERCHANT, cases.overpayment(timedelta(days=46)),
                         account_ref="payer-9", now=cases.ORDERED + timedelta(days=46))
    return decision_id, _actions(container, decision_id)["credit"]


def _credits(container: Container) -> list[tuple[str | None, int]]:
    with container.sessions() as s:
        return [(c.action_id, c.amount) for c in s.scalars(select(AccountCredit))]


def test_granting_the_same_action_twice_writes_one_credit_entry(container):
    """A second grant under the same action id is refused, and the balance counts it once."""
    decision_id, action = _credit_decision(container)
    granted = []
    for _ in range(2):  # two workers, one after the other
        with container.sessions() as s, s.begin():
            granted.append(ledger_credit.grant(
                s, merchant=MERCHANT, account_ref="payer-9", amount=Money(950, "USD"),
                reason="overpayment", clause=action.clause, decision_id=decision_id,
                action_id=action.id, now=cases.ORDERED + timedelta(days=46)))
    assert granted == [True, False]
    assert _credits(container) == [(action.id, 950)]
    with container.sessions() as s:
        assert ledger_credit.balance(s, MERCHANT, "payer-9", "USD") == Money(950, "USD")


def test_a_credit_action_run_again_from_pending_still_grants_once(container):
    """Handed out again as pending after it ran, the credit action reaches the grant and adds
    nothing: one entry of 9.50."""
    decision_id, action = _credit_decision(container)
    assert run_action(container, action.id) == ActionStatus.SUCCEEDED
    with container.sessions() as s, s.begin():
        s.get(Action, action.id).status = ActionStatus.PENDING
    assert run_action(container, action.id) == ActionStatus.SUCCEEDED
    assert _credits(container) == [(action.id, 950)]
    with container.sessions() as s:
        assert ledger_credit.balance(s, MERCHANT, "payer-9", "USD") == Money(950, "USD")
    assert _decision_status(container, decision_id) == DecisionStatus.EXECUTED


# --- A decision with a failed action is never executed --------------------------------------------


def _refund_and_credit(client: FlaskClient, container: Container) -> tuple[str, Action, Action]:
    """A claim in review (no EUR amount for the SSL deduction) approved with a refund of 60.00
    and a credit of 10.00: one decision, two actions."""
    charge = _charge(client, container, "refund-and-credit", currency="eur")
    decision_id = decide(container, MERCHANT, cases.guarantee_claim(
        12000, "EUR", addons=("ssl_certificate",)), payment_ref=charge, account_ref="cus_1",
        now=cases.DECIDED_AT)
    assert _decision_status(container, decision_id) == DecisionStatus.NEEDS_REVIEW
    assert answer(container, MERCHANT, decision_id, {
        "approve": True, "reviewer": "kim@finance", "refund": {"amount": 6000, "currency": "EUR"},
        "credit": {"amount": 1000, "currency": "EUR"}}) == DecisionStatus.RECORDED
    actions = _actions(container, decision_id)
    return decision_id, actions["refund"], actions["credit"]


def _refund_refused(container: Container, refund: Action) -> None:
    responses.post(STRIPE_REFUNDS, status=400, json={"error": {
        "type": "invalid_request_error", "code": "charge_disputed", "message": "disputed"}})
    assert run_action(container, refund.id) == ActionStatus.FAILED


def _granted(container: Container, credit: Action) -> None:
    stripe_balance_answered()
    assert run_action(container, credit.id) == ActionStatus.SUCCEEDED


@responses.activate
@pytest.mark.parametrize("refund_first", [True, False],
                         ids=["refund refused, then credit", "credit, then refund refused"])
def test_a_decision_holding_a_failed_action_goes_back_to_review(client, container, refund_first):
    """Whichever of a refused refund and a granted credit comes first, the decision goes back
    to review, never executed; once a reviewer answers the failure with a further credit and it
    is granted, the decision is executed (the answered failure no longer holds it)."""
    decision_id, refund, credit = _refund_and_credit(client, container)
    steps = [lambda: _refund_refused(container, refund), lambda: _granted(container, credit)]
    seen = []
    for step in steps if refund_first else steps[::-1]:
        step()
        seen.append(_decision_status(container, decision_id))
    assert seen[-1] == DecisionStatus.NEEDS_REVIEW
    assert DecisionStatus.EXECUTED not in seen

    assert answer(container, MERCHANT, decision_id, {
        "approve": True, "reviewer": "kim@finance",
        "credit": {"amount": 500, "currency": "EUR"}}) == DecisionStatus.RECORDED
    with container.sessions() as s:
        more = s.scalars(select(Action).where(Action.decision_id == decision_id,
                                              Action.status == ActionStatus.PENDING)).one()
    _granted(container, more)
    assert _decision_status(container, decision_id) == DecisionStatus.EXECUTED
    with container.sessions() as s:
        statuses = sorted((a.kind, a.amount, a.status) for a in s.scalars(
            select(Action).where(Action.decision_id == decision_id)))
    assert statuses == [("credit", 500, ActionStatus.SUCCEEDED),
                        ("credit", 1000, ActionStatus.SUCCEEDED),
                        ("refund", 6000, ActionStatus.FAILED)]


@responses.activate
def test_a_failure_no_reviewer_answered_keeps_the_decision_from_being_executed(client,
                                                                               container):
    """A decision recorded with a failed action that no review has answered (a state only a
    fault elsewhere could leave) is not executed when its other action succeeds."""
    decision_id, refund, credit = _refund_and_credit(client, container)
    _refund_refused(container, refund)
    with container.sessions() as s, s.begin():  # as if the reopening had been lost
        row = s.get(Decision, decision_id)
        assert row is not None
        row.status, row.reviewed_at = DecisionStatus.RECORDED, None
    _granted(container, credit)
    assert _decision_status(container, decision_id) == DecisionStatus.RECORDED


# --- Two snapshots of one second: the later state wins, then the larger event id ------------------


def _in_order(client: FlaskClient, container: Container, events: list[dict[str, Any]]) -> None:
    for e in events:
        deliver(client, "stripe", e)
        run_worker(container)  # one at a time: applied in exactly this order


@responses.activate
def test_a_subscription_cancelled_in_the_same_second_stays_cancelled(client, container):
    """`active` and `canceled` share a timestamp and arrive reversed: it ends canceled."""
    scenario = samples.Scenario(key="same-second-sub")
    at = scenario.period(1)[1]
    canceled = samples.stripe_event("customer.subscription.deleted", scenario, created=at)
    active = samples.stripe_event("customer.subscription.updated", scenario, created=at)
    _in_order(client, container, [canceled, active])
    with container.sessions() as s:
        sub = s.scalars(select(Subscription)).one()
    assert sub.status == "canceled" and sub.ended_at is not None


@responses.activate
def test_an_invoice_paid_in_the_same_second_it_was_finalized_stays_paid(client, container):
    """`open` and `paid` share a timestamp and arrive reversed: it ends paid."""
    scenario = samples.Scenario(key="same-second-invoice")
    at = scenario.period(1)[0] + 3600
    paid = samples.stripe_event("invoice.paid", scenario, created=at)
    finalized = samples.stripe_event("invoice.finalized", scenario, created=at)
    _in_order(client, container, [paid, finalized])
    with container.sessions() as s:
        invoice = s.scalars(select(Invoice)).one()
    assert invoice.status == "paid" and invoice.paid_at is not None


@responses.activate
@pytest.mark.parametrize("larger_first", [True, False], ids=["larger id first", "smaller first"])
def test_snapshots_of_equal_time_and_state_are_ordered_by_event_id(client, container,
                                                                  larger_first):
    """Two `active` snapshots of one second: the one with the larger event id wins either way."""
    scenario = samples.Scenario(key=f"same-rank-{larger_first}")
    at = scenario.period(1)[0] + 7200
    smaller = samples.stripe_event("customer.subscription.updated", scenario, created=at,
                                   event_id="evt_1SameSecondA", cancel_at_period_end=False)
    larger = samples.stripe_event("customer.subscription.updated", scenario, created=at,
                                  event_id="evt_1SameSecondB", cancel_at_period_end=True)
    _in_order(client, container, [larger, smaller] if larger_first else [smaller, larger])
    with container.sessions() as s:
        sub = s.scalars(select(Subscription)).one()
    assert (sub.status, sub.cancel_at_period_end, sub.version_event) == (
        "active", True, "evt_1SameSecondB")


# --- A PayPal sale is an overpayment only after the subscription ended ----------------------------


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@responses.activate  # no request may leave: an overpayment this old becomes ledger credit
@pytest.mark.parametrize("sale_first", [False, True], ids=["cancellation first", "sale first"])
@pytest.mark.parametrize(("after", "overpaid"), [(0, False), (1, True)],
                         ids=["paid as it ended", "paid a second later"])
def test_a_sale_is_an_overpayment_only_once_the_subscription_has_ended(client, container,
                                                                      sale_first, after,
                                                                      overpaid):
    """A sale paid at the very moment the subscription was cancelled is not an overpayment;
    one paid a second later is, whichever of the two events arrives first."""
    scenario = samples.Scenario(key=f"edge-{after}-{sale_first}", amount=2000,
                                payment_method="paypal")
    ended = datetime.fromtimestamp(scenario.period(2)[0], UTC)
    cancelled = samples.paypal_event("BILLING.SUBSCRIPTION.CANCELLED", scenario)
    cancelled["resource"]["status_update_time"] = cancelled["resource"]["update_time"] = _iso(
        ended)
    sale = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=2)
    paid = ended + timedelta(seconds=after)
    sale["resource"]["create_time"] = _iso(paid)
    sale["resource"]["update_time"] = _iso(paid + timedelta(seconds=1))
    for e in [sale, cancelled] if sale_first else [cancelled, sale]:
        deliver(client, "paypal", e, shared_signer())
        run_worker(container)

    with container.sessions() as s:
        decided = s.scalars(select(Decision.payment_ref).where(
            Decision.request_kind == "overpayment")).all()
        sub = s.scalars(select(Subscription)).one()
    assert sub.canceled_at == ended  # the ledger holds the end the test means
    assert decided == ([sale["resource"]["id"]] if overpaid else [])
