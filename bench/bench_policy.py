"""Benchmark ``policy.evaluate`` on a realistic mix of Cases, on one core.

Usage: python bench/bench_policy.py [--seconds N] [--target CASES_PER_SECOND]

Builds the Cases once (through ``case_from_json``, as the workers do), then evaluates them
round-robin for N seconds. The figure judged against the requirement ("at least 50,000 Cases per
second on one core") is the first line: Cases per second of wall clock over the whole run,
garbage collector on as in production. The other lines help read it: the spread of 0.25 s slices
and what the garbage collector did (if the best slice is far above the sustained figure while the
collector did next to nothing, the gap comes from the machine, not from the code). Exits 1 when
the sustained figure is below the target. Writes nothing.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy import Case, Pack, case_from_json, evaluate, load_pack

NOW = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
USD = "USD"
TARGET = 50_000  # Cases per second, sustained, on one core
SLICE_SECONDS = 0.25


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
                     "uptime": {"measured_percent": "99.2",
                                "incident_at": "2025-03-07T10:00:00Z"}}),
    ("oneclick", {"request": request("cancellation"), "account": {}, "order": order()}),
    ("digitalcare", {"request": request("refund", reason_code="provider_fault"), "account": {},
                     "order": order(service_date="2025-03-05T00:00:00Z",
                                    service_state="completed")}),
    ("digitalcare", {"request": request("cancellation"), "account": {}, "order": order()}),
]


def build() -> list[tuple[Pack, Case]]:
    packs = {name: load_pack(name) for name, _ in MIX}
    return [(packs[name], case_from_json(data)) for name, data in MIX]


@dataclass(frozen=True)
class Result:
    sustained: float  # Cases per wall-clock second over the whole run: the judged figure
    per_cpu: float  # Cases per CPU second of this process over the whole run
    slices: list[float]  # Cases per wall-clock second in each slice
    gc_collections: int  # garbage collections during the run (all generations)
    gc_seconds: float  # wall-clock time spent in them


def run(seconds: float, slice_seconds: float = SLICE_SECONDS) -> Result:
    """Evaluate the mix round-robin for ``seconds``, timing each ``slice_seconds`` slice."""
    work = build()
    collections, paused = 0, 0.0
    started = 0.0

    def on_gc(phase: str, info: dict[str, int]) -> None:
        nonlocal collections, paused, started
        if phase == "start":
            started = time.perf_counter()
        else:
            collections += 1
            paused += time.perf_counter() - started

    gc.callbacks.append(on_gc)
    try:
        count, slices = 0, []
        start, cpu_start = time.perf_counter(), time.process_time()
        deadline = start + seconds
        while (now := time.perf_counter()) < deadline:
            slice_count, slice_end = 0, now + slice_seconds
            while time.perf_counter() < slice_end:
                for pack, case in work:
                    evaluate(pack, case, NOW)
                slice_count += len(work)
            slices.append(slice_count / (time.perf_counter() - now))
            count += slice_count
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        gc.callbacks.remove(on_gc)
    return Result(count / wall, count / cpu, slices, collections, paused)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to run (default 5)")
    parser.add_argument("--target", type=float, default=TARGET,
                        help=f"sustained Cases/second required (default {TARGET:,})")
    args = parser.parse_args(argv)
    r = run(args.seconds)
    met = r.sustained >= args.target
    print(f"{r.sustained:,.0f} Cases/second sustained ({len(MIX)}-case mix, one core, "
          f"{args.seconds:g}s wall clock): {'meets' if met else 'BELOW'} the target of "
          f"{args.target:,.0f}")
    print(f"{r.per_cpu:,.0f} Cases per CPU-second (excludes time other processes held the core)")
    print(f"{max(r.slices):,.0f} Cases/second in the best {SLICE_SECONDS}s slice; median "
          f"{statistics.median(r.slices):,.0f}, worst {min(r.slices):,.0f} "
          f"({len(r.slices)} slices)")
    print(f"garbage collector: {r.gc_collections} collections, "
          f"{r.gc_seconds * 1000:.1f} ms in total (left enabled)")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
