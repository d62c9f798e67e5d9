"""Benchmark ``policy.evaluate`` on a realistic mix of Cases, on one core.

Usage: python bench/bench_policy.py [--seconds N]

Builds the Cases once (through ``case_from_json``, as the workers do), then evaluates them
round-robin for N seconds and prints Cases/second. Writes nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy import Case, Pack, case_from_json, evaluate, load_pack  # noqa: E402

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
USD = "USD"


def money(amount: int, currency: str = USD) -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


def order(**extra: Any) -> dict[str, Any]:
    base = {"type": "new", "product_category": "web_hosting", "ordered_at": "2025-03-01T09:00:00Z",
            "amount": money(11988), "term_months": 12, "next_billing_at": "2025-04-01T00:00:00Z",
            "payment_provider": "stripe", "payment_method": "card"}
    return base | extra


def request(kind: str, **extra: Any) -> dict[str, Any]:
    base = {"kind": kind, "received_at": "2025-03-08T10:00:00Z", "reason": "not what I need",
            "identity": {"username": "u1", "main_domain": "example.com", "invoice_number": "INV-3",
                         "date_of_birth": "1980-02-03", "order_number": "O-9", "verified": True}}
    return base | extra


INVOICES = [{"number": f"INV-{i}", "amount": money(999), "due_at": f"2025-0{i}-15T00:00:00Z",
             "paid": i < 3, "notified_at": f"2025-0{i}-01T00:00:00Z"} for i in range(1, 4)]

MIX: list[tuple[str, dict[str, Any]]] = [
    ("cloudbehind", {"request": request("refund"), "account": {},
                     "order": order(product_category="vpn", amount=money(5999)),
                     "usage": {"bandwidth_bytes": 3_000_000_000, "sessions": 40}}),
    ("cloudbehind", {"request": request("refund"), "account": {},
                     "order": order(product_category="vpn", type="renewal", auto_renew=True),
                     "usage": {"bandwidth_bytes": 0, "sessions": 0, "used_since_renewal": True}}),
    ("theopenhost", {"request": request("refund"), "account": {},
                     "order": order(addons=["ssl_certificate", "website_templates"])}),
    ("theopenhost", {"request": request("cancellation"), "account": {"invoices": INVOICES[:2]},
                     "order": order()}),
    ("theopenhost", {"request": request("overdue_invoice", invoice_number="INV-3"),
                     "account": {"invoices": INVOICES}}),
    ("theopenhost", {"request": request("overpayment"), "account": {},
                     "payment": {"amount": money(2000), "received_at": "2025-01-20T00:00:00Z",
                                 "overpaid_amount": money(1000), "provider": "paypal",
                                 "via_subscription": True}}),
    ("theopenhost", {"request": request("uptime_credit"), "account": {},
                     "order": order(product_category="vps", amount=money(3000), term_months=1),
                     "uptime": {"measured_percent": "99.2", "incident_at": "2025-03-07T10:00:00Z"}}),
    ("oneclick", {"request": request("cancellation"), "account": {}, "order": order()}),
    ("digitalcare", {"request": request("refund", reason_code="provider_fault"), "account": {},
                     "order": order(service_date="2025-03-05T00:00:00Z", service_state="completed")}),
    ("digitalcare", {"request": request("cancellation"), "account": {}, "order": order()}),
]


def build() -> list[tuple[Pack, Case]]:
    packs = {name: load_pack(name) for name, _ in MIX}
    return [(packs[name], case_from_json(data)) for name, data in MIX]


def run(seconds: float, slice_seconds: float = 0.25) -> tuple[float, float, float]:
    """(Cases per wall second overall, per CPU second overall, per wall second in the best slice).

    The best slice is the figure least disturbed by other processes on a shared machine (the same
    reasoning as ``timeit``'s best-of-N); the overall figures are printed beside it.
    """
    work = build()
    count, best = 0, 0.0
    start, cpu_start = time.perf_counter(), time.process_time()
    deadline = start + seconds
    while (now := time.perf_counter()) < deadline:
        slice_count, slice_end = 0, now + slice_seconds
        while time.perf_counter() < slice_end:
            for pack, case in work:
                evaluate(pack, case, NOW)
            slice_count += len(work)
        best = max(best, slice_count / (time.perf_counter() - now))
        count += slice_count
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return count / wall, count / cpu, best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to run (default 5)")
    args = parser.parse_args(argv)
    wall, cpu, best = run(args.seconds)
    print(f"{wall:,.0f} Cases/second ({len(MIX)}-case mix, one core, {args.seconds:g}s wall clock)")
    print(f"{cpu:,.0f} Cases per CPU-second (excludes time other processes held the core)")
    print(f"{best:,.0f} Cases/second in the best 0.25s slice (least disturbed by other load)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
