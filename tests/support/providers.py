"""What the local fake provider's books must show at the end of a test that used it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from ledger.models import Payment, Refund
from sandbox.fake_providers import FakeProviders
from service.bootstrap import Container


def assert_books_balanced(fake: FakeProviders,
                          ledger_refunds: Mapping[str, int] | None = None) -> None:
    """No payment refunded beyond what it captured at the provider; and, given the ledger's
    refunded total per payment (minor units), the provider refunded exactly as much of each."""
    books = fake.books()
    over = {pid: (captured, refunded) for pid, (captured, refunded, _) in books.items()
            if refunded > captured}
    assert not over, f"refunded more than was captured, at the provider: {over}"
    if ledger_refunds is not None:
        provider = {pid: refunded for pid, (_, refunded, _) in books.items() if refunded}
        ledger = {pid: amount for pid, amount in ledger_refunds.items() if amount}
        assert ledger == provider, f"ledger refunds {ledger} != provider refunds {provider}"


def ledger_refunds(container: Container) -> dict[str, int]:
    """Per payment, what the ledger says our actions refunded (refunds that did not fail)."""
    with container.sessions() as session:
        rows = session.execute(select(Refund.payment_ref, Refund.amount).where(
            Refund.action_id.is_not(None), Refund.unsolicited.is_(False),
            Refund.status.notin_(("failed", "canceled", "cancelled")))).all()
    totals: dict[str, int] = {}
    for payment_ref, amount in rows:
        totals[str(payment_ref)] = totals.get(str(payment_ref), 0) + amount
    return totals


def assert_money_invariant(container: Container, fake: FakeProviders) -> None:
    """Over the whole ledger and the fake provider's own books: no payment refunded beyond
    what it captured, on either side, and the ledger's refunds equal the provider's."""
    with container.sessions() as session:
        captured = dict(session.execute(select(Payment.provider_id, Payment.amount)).all())
        rows = session.execute(select(Refund.payment_ref, Refund.amount).where(
            Refund.status.notin_(("failed", "canceled", "cancelled")))).all()
    refunded: dict[str, int] = {}
    for payment_ref, amount in rows:
        refunded[str(payment_ref)] = refunded.get(str(payment_ref), 0) + amount
    over = {ref: (captured.get(ref), total) for ref, total in refunded.items()
            if ref in captured and total > captured[ref]}
    assert not over, f"refunded more than was captured, in the ledger: {over}"
    assert_books_balanced(fake, ledger_refunds(container))


def stripe_balance_answered() -> None:
    """Stripe's customer balance transactions faked with ``responses`` (inside an active
    ``responses`` mock): each POST answers a transaction of the amount and currency sent, so a
    Stripe customer's account credit is granted on the customer balance."""
    import json
    import re
    from urllib.parse import parse_qs

    import responses

    def reply(request: Any) -> tuple[int, dict[str, str], str]:
        form = parse_qs(request.body if isinstance(request.body, str)
                        else (request.body or b"").decode())
        customer = request.url.split("/customers/")[1].split("/")[0]
        return 200, {}, json.dumps({
            "id": f"cbtxn_{len(responses.calls)}", "object": "customer_balance_transaction",
            "amount": int(form["amount"][0]), "currency": form["currency"][0],
            "customer": customer})

    responses.add_callback(responses.POST, re.compile(
        r"https://api\.stripe\.com/v1/customers/[^/]+/balance_transactions"), callback=reply)


def provider_apis_answered(refund_id: str = "re_test_1") -> None:
    """The providers' APIs a refund, a cancellation and a reconciliation call, faked with
    ``responses`` (inside an active mock): a Stripe refund succeeds for the amount asked (its id
    ``refund_id``), and every listing answers empty."""
    import json
    import re
    from urllib.parse import parse_qs

    import responses

    def refund(request: Any) -> tuple[int, dict[str, str], str]:
        form = parse_qs(request.body)
        return 200, {}, json.dumps({"id": refund_id, "object": "refund", "status": "succeeded",
                                    "amount": int(form["amount"][0]), "currency": "usd",
                                    "charge": form["charge"][0]})

    responses.add_callback(responses.POST, "https://api.stripe.com/v1/refunds", callback=refund)
    responses.post(re.compile(r"https://api\.stripe\.com/v1/subscriptions/.*"),
                   json={"id": "sub", "object": "subscription", "status": "active"})
    responses.get(re.compile(r"https://api\.stripe\.com/v1/balance_transactions.*"),
                  json={"object": "list", "data": [], "has_more": False,
                        "url": "/v1/balance_transactions"})
    responses.get(re.compile(r"https://api\.stripe\.com/v1/events.*"),
                  json={"object": "list", "data": [], "has_more": False, "url": "/v1/events"})
    responses.post("https://api-m.sandbox.paypal.com/v1/oauth2/token",
                   json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})
    responses.get(re.compile(r"https://api-m\.sandbox\.paypal\.com/v1/reporting/.*"),
                  json={"transaction_details": [], "total_items": 0, "total_pages": 0,
                        "page": 1})
    responses.get(re.compile(r"https://api-m\.sandbox\.paypal\.com/v1/notifications/.*"),
                  json={"events": [], "count": 0, "links": []})
