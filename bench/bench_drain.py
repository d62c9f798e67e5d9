"""Drain: events one worker process applies per second, from the inbox to the ledger and the
Decision, against no-op RQ jobs on the same Redis as the floor.

    python bench/bench_drain.py [--events 20000] [--database-url URL] [--redis-url URL]

N realistic events (whole Stripe and PayPal subscription life cycles from ``sandbox.samples``,
spread over every merchant; the end of each subscription is decided as a cancellation, and one
PayPal subscription in four is paid again after it ended, an overpayment that theopenhost's pack
refunds through the fake PayPal API) are
stored in a fresh inbox as the web tier stores them (``ledger.inbox.new_event_row``) and handed
out as it hands them out (``Dispatcher.notify_many``: partition lists and one coalesced drain job
per partition). Then ONE `gateway worker --burst` runs them, with the providers' APIs answered by
the local fake (``sandbox.fake_providers``). The figure: events per second between the first and
the last batch the worker applied. The ceiling: the same events through the no-op drain
(``floor_drain.py``: pop, lock, parse, mark, commit; nothing applied). The floor: no-op RQ jobs,
drained by one ``SimpleWorker`` and by one forking ``Worker``. Target: at least 2,000 events per
second per worker process on SQLite, 1,500 on PostgreSQL.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib

# Events per second per worker process (the issue on performance, second round).
TARGETS = {"sqlite": 2000, "postgresql": 1500}
DAY = 86_400


def realistic_events(count: int) -> list[tuple[str, str, bytes]]:
    """(merchant, provider, raw body) for about ``count`` events, each life cycle in order."""
    from sandbox import samples
    from sandbox.simulator import encode
    from service.config import load_settings

    merchants = sorted(load_settings({}).merchants)
    tag = uuid.uuid4().hex[:6]
    recent = int(time.time()) - 70 * DAY  # cycle 3 began about 11 days ago: refundable
    out: list[tuple[str, str, bytes]] = []
    unit = 0
    while len(out) < count:
        merchant = merchants[unit % len(merchants)]
        stripe = samples.Scenario(key=f"drain-{tag}-s{unit}")
        out += [(merchant, "stripe", encode(e)) for e in samples.stripe_lifecycle(stripe)]
        overpaid = unit % 4 == 0
        paypal = samples.Scenario(key=f"drain-{tag}-p{unit}", payment_method="paypal",
                                  period_start=recent if overpaid else 1_767_225_600)
        events = samples.paypal_lifecycle(paypal)
        if overpaid:  # PayPal billed once more after the subscription was cancelled
            events.append(samples.paypal_event("PAYMENT.SALE.COMPLETED", paypal, cycle=3))
        # theopenhost's pack refunds an overpayment (003 §1.7b); the others ask a person
        payee = "theopenhost" if overpaid and "theopenhost" in merchants else merchant
        out += [(payee, "paypal", encode(e)) for e in events]
        unit += 1
    return out[:count]


def preload(container: Any, events: list[tuple[str, str, bytes]], streamed: bool = True
            ) -> dict[int, list[int]]:
    """Hand the events to the drain as the web tier does. With the Redis inbox (``streamed``):
    appended to the partitions' streams, which the drain moves into the inbox table as it
    applies them (returns {}). Otherwise stored in the table and their ids handed out; returns
    the ids per partition."""
    from sqlalchemy import Table, insert, select

    from gateway.envelope import parse_json, paypal_envelope, stripe_envelope
    from ledger.inbox import new_event_row
    from ledger.models import InboxEvent
    from workers.dispatch import partition_of

    settings = container.settings
    rows = []
    for merchant_name, provider, raw in events:
        merchant = settings.merchant(merchant_name)
        if provider == "stripe":
            envelope = stripe_envelope(parse_json(raw))
            livemode = bool(envelope.livemode)
        else:
            envelope, livemode = paypal_envelope(parse_json(raw)), False  # sandbox
        rows.append(new_event_row(
            merchant=merchant, provider=provider, envelope=envelope, livemode=livemode, raw=raw,
            headers={"Content-Type": "application/json"},
            partition=partition_of(merchant_name, envelope.object_ref, settings.partitions)))
    if streamed and settings.inbox == "redis":
        for i in range(0, len(rows), 500):  # pipelined: loading is not timed
            for row, appended in zip(rows[i:i + 500],
                                     container.intake.append_many(rows[i:i + 500]), strict=True):
                if appended.schedule:
                    container.dispatcher.schedule(row["partition"])
        return {}
    for i in range(0, len(rows), 2000):  # bulk, not one commit per row: loading is not timed
        with container.engine.begin() as conn:
            conn.execute(insert(cast(Table, InboxEvent.__table__)), rows[i:i + 2000])
    by_partition: dict[int, list[int]] = {}
    with container.engine.connect() as conn:
        for inbox_id, partition in conn.execute(
                select(InboxEvent.id, InboxEvent.partition).order_by(InboxEvent.id)):
            by_partition.setdefault(partition, []).append(inbox_id)
    for partition, ids in by_partition.items():
        for i in range(0, len(ids), 5000):
            container.dispatcher.notify_many(partition, ids[i:i + 5000])
    return by_partition


def measure_floor(redis_url: str, jobs_simple: int, jobs_fork: int) -> dict[str, Any]:
    from redis import Redis
    from rq import Queue

    found = {}
    redis = Redis.from_url(redis_url)
    for kind, jobs in (("simple", jobs_simple), ("fork", jobs_fork)):
        queue = Queue(f"bench-floor-{uuid.uuid4().hex[:6]}", connection=redis)
        with queue.connection.pipeline() as pipe:
            for _ in range(jobs):
                queue.enqueue("floor_jobs.noop", result_ttl=0, pipeline=pipe)
            pipe.execute()
        out = subprocess.run([benchlib.PYTHON, str(benchlib.BENCH / "floor_jobs.py"),
                              "--redis-url", redis_url, "--queue", queue.name, "--worker", kind],
                             capture_output=True, text=True, cwd=benchlib.ROOT, check=True)
        found[kind] = json.loads(out.stdout.strip().splitlines()[-1])
    redis.close()
    return found


def measure_worker(container: Any, env: dict[str, str], n: int, workdir: Path,
                   profile_dir: Path | None, timeout: float = 600) -> dict[str, Any]:
    from ledger.inbox import counts_by_status

    with open(workdir / "worker.log", "wb") as log:
        started = time.perf_counter()
        proc = subprocess.Popen([benchlib.PYTHON, "-m", "cli.main", "worker", "--burst"],
                                env=env, cwd=benchlib.ROOT, stdout=log, stderr=subprocess.STDOUT)
        spies = benchlib.profile([proc.pid], timeout, profile_dir, "worker") if profile_dir else []
        memory = (0.0, 0.0)
        all_done = None
        while proc.poll() is None and time.perf_counter() - started < timeout:
            try:
                memory = benchlib.rss_mb(proc.pid)
            except OSError:
                break
            counts = counts_by_status(container.engine)
            done = counts.get("processed", 0) + counts.get("ignored", 0) + counts.get("dead", 0)
            if (all_done is None and done >= n and not counts.get("pending")
                    and not counts.get("retry")):
                all_done = time.perf_counter() - started
            time.sleep(0.2)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        exited = time.perf_counter() - started
    for spy in spies:
        spy.wait()
    return {"memory_mb": memory, "until_all_processed_s": all_done, "worker_exit_s": exited,
            "exit_code": proc.returncode}


def ledger_figures(container: Any) -> dict[str, Any]:
    from sqlalchemy import func, select

    from ledger.models import Action, Decision, InboxEvent

    with container.engine.connect() as conn:
        statuses = dict(conn.execute(select(InboxEvent.status, func.count())
                                     .group_by(InboxEvent.status)).all())
        first, last = conn.execute(select(func.min(InboxEvent.processed_at),
                                          func.max(InboxEvent.processed_at))).one()
        in_last = conn.execute(select(func.count()).where(InboxEvent.processed_at == last)
                               ).scalar() if last else 0
        decisions = dict(conn.execute(select(Decision.outcome, func.count())
                                      .group_by(Decision.outcome)).all())
        actions = dict(conn.execute(select(Action.status, func.count())
                                    .group_by(Action.status)).all())
    done = sum(statuses.get(s, 0) for s in ("processed", "ignored"))
    span = (last - first).total_seconds() if first and last else 0.0
    # processed_at is when a batch began: the span covers every batch but the last.
    rate = (done - in_last) / span if span > 0 else 0.0
    return {"statuses": statuses, "events_per_second": rate, "span_s": span,
            "decisions": decisions, "actions": actions}


@contextmanager
def environment(database_url: str | None, redis_url: str | None, name: str
                ) -> Iterator[tuple[dict[str, str], str, Any]]:
    """A scratch ledger at the schema's head, the fake providers answering, and the settings
    that point the gateway at them: (environment, queue Redis URL, fake providers)."""
    from ledger.migrate import upgrade
    from sandbox import fake_providers
    from service.config import DEFAULT_MERCHANTS_FILE
    from service.embedded_redis import ensure_embedded_redis

    with benchlib.data_dir(name) as workdir, \
            benchlib.scratch_database(database_url, workdir) as url:
        fake, server = fake_providers.start()
        try:
            merchants = workdir / "merchants.toml"
            merchants.write_text(fake_providers.merchants_file_for(
                f"http://127.0.0.1:{server.server_address[1]}",
                DEFAULT_MERCHANTS_FILE.read_text()))
            env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
            env.update({"GATEWAY_DATA_DIR": str(workdir), "DATABASE_URL": url,
                        "GATEWAY_MERCHANTS_FILE": str(merchants)})
            if redis_url:
                env["REDIS_URL"] = redis_url
                benchlib.clear_redis(redis_url)
            upgrade(url)
            yield env, redis_url or ensure_embedded_redis(workdir), fake
        finally:
            server.shutdown()
            server.server_close()


def run(events: int, database_url: str | None, redis_url: str | None,
        profile_dir: Path | None = None, floor_jobs: tuple[int, int] = (2000, 400)
        ) -> dict[str, Any]:
    from service.bootstrap import Container
    from service.config import load_settings

    with environment(database_url, redis_url, "drain") as (env, queue_url, fake):
        floor = measure_floor(queue_url, *floor_jobs)
        container = Container(load_settings(env))
        stream = realistic_events(events)
        for _, _, raw in stream:  # the fake provider captured the payments stored
            fake.observe(json.loads(raw))
        preload(container, stream)
        worker = measure_worker(container, env, events, Path(env["GATEWAY_DATA_DIR"]),
                                profile_dir)
        figures = ledger_figures(container)
        ceiling = measure_ceiling(container, env, queue_url)
        container.close()
        provider_calls = Counter(f"{r.method} {r.path.split('/')[1]}" for r in fake.requests)
    rate = figures["events_per_second"]
    backend = "postgresql" if benchlib.is_postgres_url(database_url) else "sqlite"
    return {"backend": backend, "target": TARGETS[backend],
            "events": events, "floor": floor, "ceiling": ceiling, "worker": worker,
            "fake_provider_requests": sum(provider_calls.values()), **figures,
            "ratio_simple": rate / floor["simple"]["per_second"],
            "ratio_fork": rate / floor["fork"]["per_second"],
            "ratio_ceiling": rate / ceiling["per_second"] if ceiling["per_second"] else 0.0,
            "met": rate >= TARGETS[backend]}


def measure_ceiling(container: Any, env: dict[str, str], redis_url: str) -> dict[str, Any]:
    """The same events again through the no-op drain (``floor_drain.py``): every inbox row set
    back to pending and its id pushed back on its partition's list, then drained by a process
    that pops, locks, parses, marks and commits, and applies nothing."""
    from sqlalchemy import Table, select, update

    from ledger.models import InboxEvent
    from workers.dispatch import list_key

    inbox = cast(Table, InboxEvent.__table__)
    with container.engine.begin() as conn:
        conn.execute(update(inbox).values(status="pending"))
        rows = conn.execute(select(inbox.c.id, inbox.c.partition).order_by(inbox.c.id)).all()
    by_partition: dict[int, list[int]] = {}
    for inbox_id, partition in rows:
        by_partition.setdefault(partition, []).append(inbox_id)
    for partition, ids in by_partition.items():
        container.redis.rpush(list_key(partition), *ids)
    settings = container.settings
    out = subprocess.run([benchlib.PYTHON, str(benchlib.BENCH / "floor_drain.py"),
                          "--partitions", str(settings.partitions),
                          "--batch-size", str(settings.batch_size)],
                         env={**env, "REDIS_URL": redis_url}, capture_output=True, text=True,
                         cwd=benchlib.ROOT, check=True)
    return cast(dict[str, Any], json.loads(out.stdout.strip().splitlines()[-1]))


def report(r: dict[str, Any]) -> str:
    w, f = r["worker"], r["floor"]
    done = w["until_all_processed_s"]
    return "\n".join([
        f"drain ({r['backend']}): {r['events_per_second']:,.0f} events/s by one worker "
        f"(target >= {r['target']:,}); ceiling: the no-op drain (pop, lock, parse, mark, "
        f"commit) {r['ceiling']['per_second']:,.0f}/s: {r['ratio_ceiling']:.0%} of it; floor: "
        f"no-op RQ jobs {f['simple']['per_second']:,.0f}/s (SimpleWorker), "
        f"{f['fork']['per_second']:,.0f}/s (forking Worker): "
        f"{r['ratio_simple']:.1f}x and {r['ratio_fork']:.1f}x",
        f"  {r['events']:,} events: {r['statuses']}; all applied "
        f"{f'after {done:.1f} s' if done else 'NOT within the time limit'} from the worker's "
        f"start (start-up included); the worker exited after {w['worker_exit_s']:.1f} s "
        f"(refund actions included), status {w['exit_code']}",
        f"  decisions {r['decisions']}, actions {r['actions']}, requests to the fake providers "
        f"{r['fake_provider_requests']}",
        f"  queue worker memory (MB, current/peak): {w['memory_mb'][0]:.0f}/"
        f"{w['memory_mb'][1]:.0f}",
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (default: SQLite)")
    parser.add_argument("--redis-url", default=None, help="a Redis server (default: embedded)")
    parser.add_argument("--floor-jobs", type=int, nargs=2, default=(2000, 400),
                        metavar=("SIMPLE", "FORK"), help="no-op jobs timed for each floor")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample the worker with py-spy; stacks in DIR")
    args = parser.parse_args()
    result = run(args.events, args.database_url, args.redis_url, args.profile,
                 tuple(args.floor_jobs))
    print(report(result))
    if args.profile:
        print(benchlib.summarise_profile(sorted(args.profile.glob("worker-*.txt"))))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
