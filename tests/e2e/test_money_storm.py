"""Money leaves at most once, under load, through the real processes: gunicorn as the Procfile
runs it, two queue workers, the clock, and the strict local fake of Stripe and PayPal, which
refuses a refund above what is left and counts every refund it makes.

Every test ends with the invariant over the whole ledger and the fake provider's own books: no
payment refunded beyond what it captured, and the ledger's refunds equal the provider's.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests
from sqlalchemy import func, select

from ledger.models import Action, ActionStatus, InboxEvent, Payment, RequestStatus, SupportRequest
from sandbox import samples
from sandbox.simulator import send_stripe
from service.bootstrap import Container
from tests.support.claims import FULL_IDENTITY
from tests.support.paypal import paid_after_it_ended, post_signed
from tests.support.providers import assert_money_invariant

MERCHANT = "theopenhost"
THREADS = 20


def _storm(count: int, send: Callable[[int], requests.Response]) -> list[requests.Response]:
    """``send(i)`` from ``count`` threads released together."""
    start = threading.Barrier(count)

    def one(i: int) -> requests.Response:
        start.wait()
        return send(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def _headers(settings: Any, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {settings.merchants[MERCHANT].admin_token}", **extra}


def _paid_charge(base: str, settings: Any, fake: Any, container: Container, key: str
                 ) -> samples.Scenario:
    """A 120.00 Stripe charge paid 3 days ago, in the fake's books and in the ledger."""
    scenario = samples.Scenario(key=f"{key}-{time.time_ns()}", amount=12000,
                                period_start=int(time.time()) - 3 * 86400)
    secret = settings.merchants[MERCHANT].stripe.webhook_secrets[0]
    for event_type in ("customer.subscription.created", "invoice.paid", "charge.succeeded"):
        event = samples.stripe_event(event_type, scenario)
        fake.observe(event)
        assert send_stripe(f"{base}/webhooks/{MERCHANT}/stripe", event, secret).status == 200
    _until(lambda: _payment_known(container, scenario.charge_id), "the charge in the ledger")
    return scenario


def _payment_known(container: Container, ref: str) -> bool:
    with container.sessions() as s:
        return s.scalar(select(func.count()).select_from(Payment)
                        .where(Payment.provider_id == ref)) == 1


def _until(done: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _busy(container: Container) -> dict[str, int]:
    """What is not yet at rest: events, requests and actions still to be worked on."""
    with container.sessions() as s:
        return {
            "events": s.scalar(select(func.count()).select_from(InboxEvent).where(
                InboxEvent.status.in_(("pending", "retry")))) or 0,
            "requests": s.scalar(select(func.count()).select_from(SupportRequest).where(
                SupportRequest.status == RequestStatus.RECEIVED)) or 0,
            "actions": s.scalar(select(func.count()).select_from(Action).where(
                Action.status.in_((ActionStatus.PENDING, ActionStatus.EXECUTING)))) or 0}


def _quiet(container: Container) -> bool:
    return not any(_busy(container).values())


def _settle_and_check(container: Container, fake: Any) -> None:
    # Generous: a retry waits out its backoff (10 s, then 20 s) on a loaded machine.
    deadline = time.monotonic() + 180
    while not _quiet(container):
        assert time.monotonic() < deadline, f"still busy: {_busy(container)}"
        time.sleep(0.3)
    assert_money_invariant(container, fake)


def _claim(base: str, settings: Any, scenario: samples.Scenario, *, key: str | None = None,
           reason: str = "it does not work for me", account: str | None = None
           ) -> requests.Response:
    extra = {"Idempotency-Key": key} if key else {}
    return requests.post(f"{base}/v1/refund-requests", headers=_headers(settings, **extra),
                         timeout=30, json={
                             "account": account or scenario.customer_id,
                             "payment": scenario.charge_id, "reason": reason,
                             "identity": FULL_IDENTITY})


def _refunds_at_provider(fake: Any, payment: str) -> list[dict[str, Any]]:
    return [r for r in fake.refunds.values() if r.get("charge") == payment
            or r.get("payment") == payment]


def test_one_request_sent_from_20_threads_with_one_key_is_filed_and_paid_once(busy_gateway,
                                                                             container):
    """Every copy answers 202 with the same request id; one full refund reaches the provider."""
    base, settings, fake = busy_gateway
    scenario = _paid_charge(base, settings, fake, container, "storm-key")
    answers = _storm(THREADS, lambda i: _claim(base, settings, scenario, key="retry-me-1"))
    assert {r.status_code for r in answers} == {202}, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in answers) == THREADS - 1
    _settle_and_check(container, fake)
    assert fake.books()[scenario.charge_id] == (12000, 12000, "USD")
    assert len(_refunds_at_provider(fake, scenario.charge_id)) == 1


def test_one_request_sent_from_20_threads_without_a_key_is_filed_once(busy_gateway, container):
    """One copy is filed (202); every other answers 409 naming it; one refund is paid."""
    base, settings, fake = busy_gateway
    scenario = _paid_charge(base, settings, fake, container, "storm-nokey")
    answers = _storm(THREADS, lambda i: _claim(base, settings, scenario))
    codes = Counter(r.status_code for r in answers)
    assert codes == {202: 1, 409: THREADS - 1}, [r.text for r in answers]
    (filed,) = [r.json()["id"] for r in answers if r.status_code == 202]
    assert {r.json()["error"]["existing"] for r in answers if r.status_code == 409} == {filed}
    _settle_and_check(container, fake)
    assert fake.books()[scenario.charge_id] == (12000, 12000, "USD")
    assert len(_refunds_at_provider(fake, scenario.charge_id)) == 1


def test_different_requests_for_one_payment_from_20_threads_pay_once(busy_gateway, container):
    """Twenty different claims (own keys, own reasons) on one charge: one is filed and paid
    in full; the rest are refused with 409, and the provider refunds 120.00 once."""
    base, settings, fake = busy_gateway
    scenario = _paid_charge(base, settings, fake, container, "storm-many")
    answers = _storm(THREADS, lambda i: _claim(base, settings, scenario, key=f"claim-{i}",
                                               reason=f"reason number {i}"))
    codes = Counter(r.status_code for r in answers)
    assert codes == {202: 1, 409: THREADS - 1}, [r.text for r in answers]
    _settle_and_check(container, fake)
    assert fake.books()[scenario.charge_id] == (12000, 12000, "USD")
    assert len(_refunds_at_provider(fake, scenario.charge_id)) == 1


def _send_paypal(base: str, settings: Any, fake: Any, event: dict[str, Any]) -> None:
    fake.observe(event)
    webhook_id = settings.merchants[MERCHANT].paypal.webhook_id
    assert post_signed(base, MERCHANT, webhook_id, event) == 200


def test_an_overpayment_claims_and_review_approvals_racing_on_one_sale_stay_bounded(
        busy_gateway, container):
    """A PayPal sale after its subscription ended is refunded automatically (less 5%) while
    support files claims on it and reviewers approve refunds on it, all at once: whatever wins,
    the provider never refunds more than the 120.00 captured, and the ledger agrees."""
    base, settings, fake = busy_gateway
    scenario = samples.Scenario(key=f"storm-pp-{time.time_ns()}", amount=12000,
                                payment_method="paypal",
                                period_start=int(time.time()) - 40 * 86400)
    cancelled, sale = paid_after_it_ended(scenario)
    _send_paypal(base, settings, fake, cancelled)
    sale_id = sale["resource"]["id"]
    payer = scenario.paypal_payer_id
    claim = {"account": payer, "payment": sale_id, "reason": "charged after I cancelled",
             "identity": FULL_IDENTITY}

    def file(i: int) -> requests.Response:
        if i == 0:
            _send_paypal(base, settings, fake, sale)
            return requests.get(f"{base}/healthz", timeout=10)
        return requests.post(f"{base}/v1/refund-requests", timeout=30, json=claim,
                             headers=_headers(settings, **{"Idempotency-Key": f"pp-{i}"}))

    first = _storm(10, file)
    assert {r.status_code for r in first[1:]} <= {202, 409}, [r.text for r in first]
    _settle_and_check(container, fake)
    reviews = requests.get(f"{base}/v1/reviews", headers=_headers(settings), timeout=10).json()
    open_reviews = [r["id"] for r in reviews["reviews"]]

    def approve_or_claim(i: int) -> requests.Response:
        if i % 2 and open_reviews:
            return requests.post(f"{base}/v1/reviews/{open_reviews[i % len(open_reviews)]}",
                                 headers=_headers(settings), timeout=30, json={
                                     "approve": True, "reviewer": f"agent-{i}",
                                     "refund": {"amount": 12000 - 100 * i, "currency": "USD"}})
        return requests.post(f"{base}/v1/refund-requests", timeout=30, json=claim,
                             headers=_headers(settings, **{"Idempotency-Key": f"pp2-{i}"}))

    second = _storm(THREADS, approve_or_claim)
    assert {r.status_code for r in second} <= {200, 202, 400, 409}, [r.text for r in second]
    _settle_and_check(container, fake)
    captured, refunded, _ = fake.books()[sale_id]
    assert captured == 12000 and refunded <= captured
    assert refunded >= 11400  # the overpayment (less the 5% fee), or a claim, was paid
