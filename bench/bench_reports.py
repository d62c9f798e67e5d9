"""Reconcile N ledger entries against N provider records; print the time and peak memory.

    python bench/bench_reports.py [--entries 1000000] [--database-url URL]

The ledger is seeded first (not timed): N payments, of which a few are made to disagree with
the provider side. The timed part is what `gateway report reconcile` does: stage the provider
records, match both ways, total. Targets: under 20 s and under 500 MB resident on this machine.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, delete, insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.migrate import upgrade
from ledger.models import Payment, StagedProviderRecord
from reports.build import build_report
from reports.records import ProviderRecord, RecordKind
from service.bootstrap import Container
from service.config import load_settings

MERCHANT = "bench"
START = datetime(2026, 1, 1, tzinfo=UTC)
SEEDED_MISMATCHES = 100  # every 10,000th entry disagrees (amount), and as many are missing


def seed_ledger(engine: Engine, n: int) -> None:
    with engine.begin() as conn:
        conn.execute(delete(Payment).where(Payment.merchant == MERCHANT))
        conn.execute(delete(StagedProviderRecord))
    batch = []
    for i in range(n):
        at = START + timedelta(seconds=i)
        batch.append({"merchant": MERCHANT, "provider": "stripe", "provider_id": f"ch_{i:010d}",
                      "version_at": at, "version_rank": 1, "version_event": f"evt_{i:010d}",
                      "livemode": False, "kind": "charge", "status": "succeeded",
                      "amount": 1000 + i % 5000, "amount_refunded": 0, "currency": "USD",
                      "paid_at": at})
        if len(batch) == 20_000:
            with engine.begin() as conn:
                conn.execute(insert(Payment), batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(insert(Payment), batch)
    # A ledger that has lived a while has planner statistics (autovacuum, or SQLite's
    # ANALYZE); a table bulk-loaded a second ago does not, and would get a blind plan.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE payments" if engine.dialect.name == "postgresql"
                             else "ANALYZE")


def provider_side(n: int) -> Iterator[ProviderRecord]:
    """The provider's view: the same payments, but a few differ and a few are unknown to us."""
    for i in range(n):
        amount = 1000 + i % 5000
        if i % 10_000 == 1:
            amount += 1  # an amount mismatch
        provider_id = f"ch_{i:010d}" if i % 10_000 != 2 else f"ch_unknown_{i}"
        yield ProviderRecord("stripe", RecordKind.PAYMENT, provider_id, amount, "USD",
                             "succeeded", START + timedelta(seconds=i))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-reports-"))
    try:
        return run(args.entries, args.database_url or f"sqlite:///{workdir / 'bench.db'}",
                   workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # a million-row SQLite file is 300 MB


def run(entries: int, url: str, workdir: Path) -> int:
    upgrade(url)
    env = {"GATEWAY_DATA_DIR": str(workdir), "DATABASE_URL": url, "REDIS_URL": "redis://unused"}
    container = Container(load_settings(env))
    seed_start = time.perf_counter()
    seed_ledger(container.engine, entries)
    seeded = time.perf_counter() - seed_start
    begin = time.perf_counter()
    days = entries // 86400 + 2
    report = build_report(container, MERCHANT, date(2026, 1, 1),
                          date(2026, 1, 1) + timedelta(days=days), provider_side(entries))
    elapsed = time.perf_counter() - begin
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    usd = report["currencies"]["USD"]
    backend = container.engine.dialect.name
    print(f"{backend}: reconciled {entries:,} ledger entries against {entries:,} "
          f"provider records in {elapsed:.1f} s (target < 20 s), peak RSS {peak_mb:.0f} MB "
          f"(target < 500 MB); matched {usd['matched']:,}, discrepancies "
          f"{usd['discrepancies']:,}; seeding took {seeded:.1f} s (not timed)")
    container.close()
    ok = elapsed < 20 and peak_mb < 500
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
