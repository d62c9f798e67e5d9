"""Builders of Case JSON for the policy tests: a valid default for each request kind,
overridable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from policy import Decision, Pack, case_from_json, evaluate, load_pack

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
NOW = datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
GIB = 2**30


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def money(amount: int, currency: str = "USD") -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


@cache
def pack(name: str) -> Pack:
    return load_pack(name)


def identity(**extra: Any) -> dict[str, Any]:
    base = {"username": "alice", "main_domain": "alice.example", "invoice_number": "INV-3",
            "date_of_birth": "1980-02-03", "order_number": "O-1", "verified": True}
    return {k: v for k, v in (base | extra).items() if v is not None}


def request(kind: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "received_at": iso(at), "reason": "it does not suit me",
            "identity": identity()} | extra


def order(**extra: Any) -> dict[str, Any]:
    base = {"type": "new", "product_category": "web_hosting", "ordered_at": iso(T0),
            "amount": money(12000), "term_months": 1, "payment_provider": "stripe",
            "payment_method": "card"}
    return base | extra


def invoices(*specs: tuple[str, datetime, bool]) -> list[dict[str, Any]]:
    return [{"number": n, "amount": money(1000), "due_at": iso(due), "paid": paid,
             "notified_at": iso(due - timedelta(days=10))} for n, due, paid in specs]


def case(kind: str, at: datetime, *, request_extra: dict[str, Any] | None = None,
         **parts: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"request": request(kind, at, **(request_extra or {})), "account": {}}
    data.update(parts)
    return data


def decide(pack_name: str, data: dict[str, Any], now: datetime = NOW) -> Decision:
    return evaluate(pack(pack_name), case_from_json(data), now)


def failed(decision: Decision) -> set[str]:
    """The citations of the clauses that failed."""
    return {r.clause for r in decision.reasons if not r.holds}
