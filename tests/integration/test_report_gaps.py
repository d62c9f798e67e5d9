"""The reconciliation report's edges: refunds that failed are no refunds, and a period is
[--from, --to), so consecutive reports count a payment once."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import responses
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import Action, ActionStatus, Decision
from reports.build import build_report
from sandbox import samples
from service.bootstrap import Container
from tests.support import cases
from tests.support.delivery import deliver, run_worker
from workers.decide import decide

MERCHANT = "theopenhost"


def _at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp())


def _stripe(event_type: str, scenario: samples.Scenario, at: int, **overrides: Any
            ) -> dict[str, Any]:
    """A Stripe event whose object (the charge's payment, the refund) happened at ``at``."""
    event = samples.stripe_event(event_type, scenario, created=at, **overrides)
    event["data"]["object"]["created"] = at
    return event


def _delivered(client: FlaskClient, container: Container, *events: dict[str, Any]) -> None:
    for event in events:
        deliver(client, "stripe", event)
    run_worker(container)


def _usd(report: dict[str, Any]) -> dict[str, Any]:
    usd: dict[str, Any] = report["currencies"].get("USD", {})
    return usd


# --- A failed refund is not a refund --------------------------------------------------------------

REFUNDED_AT = _at(2026, 3, 10, 12)


def _our_refund(client: FlaskClient, container: Container, key: str, amount: int
                ) -> tuple[samples.Scenario, Action]:
    """A charge refunded in full under the guarantee; Stripe first answers the refund pending."""
    scenario = samples.Scenario(key=key, amount=amount)
    _delivered(client, container, samples.stripe_event("charge.succeeded", scenario))
    responses.post("https://api.stripe.com/v1/refunds", json={
        "id": scenario.refund_id, "object": "refund", "amount": amount, "currency": "usd",
        "charge": scenario.charge_id, "status": "pending"})
    decision_id = decide(container, MERCHANT, cases.guarantee_claim(amount),
                         payment_ref=scenario.charge_id, account_ref=f"cus_{key}",
                         now=cases.DECIDED_AT)
    run_worker(container)
    with container.sessions() as s:
        action = s.scalars(select(Action).where(Action.decision_id == decision_id)).one()
    assert action.status == ActionStatus.SUBMITTED
    return scenario, action


@responses.activate
def test_failed_refunds_are_left_out_of_the_refund_totals(client, container):
    """Ours and the dashboard's: only refunds that did not fail count, by outcome and by clause."""
    paid, ours = _our_refund(client, container, "report-refunded", 12000)
    bounced, theirs = _our_refund(client, container, "report-bounced", 11000)
    dashboard_ok = samples.Scenario(key="report-dashboard-ok", amount=500)
    dashboard_failed = samples.Scenario(key="report-dashboard-failed", amount=700)
    _delivered(client, container,
               _stripe("refund.updated", paid, REFUNDED_AT, status="succeeded",
                       metadata={"action_id": ours.id}),
               _stripe("refund.failed", bounced, REFUNDED_AT, status="failed",
                       metadata={"action_id": theirs.id}),
               _stripe("refund.updated", dashboard_ok, REFUNDED_AT, status="succeeded"),
               _stripe("refund.failed", dashboard_failed, REFUNDED_AT, status="failed"))
    with container.sessions() as s:
        assert s.get(Action, theirs.id).status == ActionStatus.FAILED
        outcome = s.get(Decision, ours.decision_id).outcome

    report = build_report(container, MERCHANT, date(2026, 3, 1), date(2026, 4, 1), [])
    usd = _usd(report)
    assert usd["refunds"] == 12000 + 500
    assert usd["refunds_by_outcome"] == {outcome: 12000, "no decision of ours": 500}
    assert usd["refunds_by_clause"] == {ours.clause: 12000, "none": 500}
    assert [(d["date"], d["refunds"]) for d in report["daily"] if d["currency"] == "USD"] == [
        ("2026-03-10", 12000 + 500)]


# --- [--from, --to): a payment at --to belongs to the next period only ----------------------------


@responses.activate
def test_consecutive_periods_count_a_payment_at_their_boundary_once(client, container):
    """A charge and a refund at exactly 1 February fall in February's report, not January's;
    one at exactly 1 January falls in January's."""
    at_from = samples.Scenario(key="edge-from", amount=1100)
    before_to = samples.Scenario(key="edge-before-to", amount=1200)
    at_to = samples.Scenario(key="edge-to", amount=1300)
    refunded_at_to = samples.Scenario(key="edge-refund", amount=400)
    _delivered(client, container,
               _stripe("charge.succeeded", at_from, _at(2026, 1, 1)),
               _stripe("charge.succeeded", before_to, _at(2026, 1, 31, 23, 59, 59)),
               _stripe("charge.succeeded", at_to, _at(2026, 2, 1)),
               _stripe("refund.updated", refunded_at_to, _at(2026, 2, 1), status="succeeded"))

    january = build_report(container, MERCHANT, date(2026, 1, 1), date(2026, 2, 1), [])
    february = build_report(container, MERCHANT, date(2026, 2, 1), date(2026, 3, 1), [])

    assert _usd(january)["gross_charges"] == 1100 + 1200
    assert _usd(february)["gross_charges"] == 1300
    assert _usd(january).get("refunds", 0) == 0 and _usd(february)["refunds"] == 400
    assert [d["date"] for d in january["daily"]] == []
    assert [(d["date"], d["refunds"]) for d in february["daily"]] == [("2026-02-01", 400)]

    def entries(report: dict[str, Any]) -> list[tuple[str, str]]:
        return sorted((d.kind.value, d.provider_id) for d in report["discrepancies"])

    assert entries(january) == sorted([("missing_at_provider", at_from.charge_id),
                                       ("missing_at_provider", before_to.charge_id)])
    assert entries(february) == sorted([("missing_at_provider", at_to.charge_id),
                                        ("missing_at_provider", refunded_at_to.refund_id),
                                        ("unsolicited_refund", refunded_at_to.refund_id)])
