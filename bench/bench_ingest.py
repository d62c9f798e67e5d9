"""Ingest: signed Stripe webhooks at full load against the gateway under gunicorn, with a bare
Flask app under the same gunicorn settings as the floor.

    python bench/bench_ingest.py [--seconds 10] [--database-url URL] [--redis-url URL]

Both servers run the Procfile's web line (``service.web.GUNICORN_ARGS``: 2 workers, 4 threads)
on a loopback port; the gateway on a fresh data directory (SQLite and the embedded Redis, or the
given PostgreSQL, in a scratch database, and Redis). The load generator (``loadgen.py``) sends
pre-signed, unique Stripe events from ``sandbox.samples`` (every merchant, whole subscription
life cycles, each event signed with its merchant's webhook secret). Both servers run at once:
closed-loop phases of the floor and the gateway alternate for three rounds, and the ratio is
the median of the rounds' ratios, so that the machine slowing down or speeding up during the
run falls on both; then open-loop at half the floor's throughput for the latency (and, to show
the latency when the gateway is not overloaded, at half its own throughput). Afterwards every
acknowledged event must be in the inbox (with the Redis inbox, in its partition's stream, with a
drain scheduled; no worker runs here). A Redis server that does not fsync every write is not
used: the benchmark starts one of its own that does (``benchlib.persistent_redis``).
Targets: throughput at least 60% of the floor's; p99 under 10 ms at half the floor's rate.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib
import loadgen

THROUGHPUT_TARGET = 0.60  # of the floor's
P99_TARGET_MS = 10.0
PROCESSES = 2  # generator processes: one per core
CONNECTIONS = 8  # per generator process: 16 in flight against gunicorn's 2 x 4 threads
PATH_PREFIX = "/webhooks"
ROUNDS = 3  # closed-loop phases of each server, alternating: the ratio is their median


@dataclass
class Requests:
    raw: list[bytes]
    event_ids: list[str]


def build_requests(port: int, count: int, scenarios: int = 64) -> Requests:
    """``count`` unique Stripe deliveries, each signed now with its merchant's webhook secret.

    Bodies come from whole life cycles of ``scenarios`` subscriptions spread over the merchants;
    each copy gets its own event id (the inbox's unique key), so no delivery is a duplicate.
    """
    from sandbox import samples
    from sandbox.simulator import _STRIPE_HEADERS, encode, stripe_signature_header
    from service.config import load_settings

    settings = load_settings({})
    merchants = [m for _, m in sorted(settings.merchants.items()) if m.stripe.webhook_secrets]
    tag = uuid.uuid4().hex[:6]
    templates: list[tuple[Any, bytes, str]] = []
    for n in range(scenarios):
        merchant = merchants[n % len(merchants)]
        for event in samples.stripe_lifecycle(samples.Scenario(key=f"bench-{tag}-{n}")):
            templates.append((merchant, encode(event), event["id"]))
    now = int(time.time())
    raw, ids = [], []
    for i in range(count):
        merchant, body, event_id = templates[i % len(templates)]
        unique = f"{event_id}_{tag}{i}"
        body = body.replace(f'"{event_id}"'.encode(), f'"{unique}"'.encode(), 1)
        headers = dict(_STRIPE_HEADERS)
        secret = merchant.stripe.webhook_secrets[0]
        headers["Stripe-Signature"] = stripe_signature_header(body, secret, now)
        raw.append(loadgen.http_request("127.0.0.1", port,
                                        f"{PATH_PREFIX}/{merchant.name}/stripe", body, headers))
        ids.append(unique)
    return Requests(raw, ids)


def _server(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, cwd=benchlib.ROOT, stdout=out,
                                stderr=subprocess.STDOUT)


def _gateway_env(workdir: Path, database_url: str, redis_url: str | None) -> dict[str, str]:
    from ledger.migrate import upgrade
    from service.embedded_redis import ensure_embedded_redis

    upgrade(database_url)
    if not redis_url:
        ensure_embedded_redis(workdir)  # as `gateway serve` does: once, before the fork
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"GATEWAY_DATA_DIR": str(workdir), "DATABASE_URL": database_url})
    if redis_url:
        env["REDIS_URL"] = redis_url
    return env


def _closed(port: int, raw: list[bytes], seconds: float) -> loadgen.Phase:
    return loadgen.run(port, raw, processes=PROCESSES, connections=CONNECTIONS, seconds=seconds)


def _open(port: int, raw: list[bytes], seconds: float, rate: float) -> loadgen.Phase:
    return loadgen.run(port, raw, processes=PROCESSES, connections=CONNECTIONS * 4,
                       seconds=seconds, rate=rate)


def measure(seconds: float, workdir: Path, database_url: str, redis_url: str | None,
            profile_dir: Path | None = None) -> dict[str, Any]:
    """Both servers up at once; ROUNDS closed-loop phases of each, alternating, so that a
    change in the machine's speed during the run falls on both; then the latency phases."""
    env = _gateway_env(workdir, database_url, redis_url)
    # The floor runs under the same gunicorn configuration, whose start-up hook checks that the
    # database is at the schema's head: it gets the gateway's (migrated) settings, and ignores them.
    floor_env = dict(env)
    floor_port, port = benchlib.free_port(), benchlib.free_port()
    floor_proc = _server(benchlib.gunicorn_command(floor_port, "bench.floor_app:app"),
                         floor_env, workdir / "floor.log")
    proc = _server(benchlib.gunicorn_command(port), env, workdir / "web.log")
    try:
        benchlib.wait_http(floor_port)
        benchlib.wait_http(port, "/readyz")
        floor_raw = build_requests(floor_port, 4000).raw * 40  # the floor ignores them
        _closed(floor_port, floor_raw, 1.0)
        warm_reqs = build_requests(port, 2000)
        warm = _closed(port, warm_reqs.raw, 1.0)
        acked = [warm_reqs.event_ids[i] for i in warm.acked]
        workers = benchlib.children(proc.pid)
        phase = max(seconds / ROUNDS, 2.0)
        rounds: list[tuple[loadgen.Phase, loadgen.Phase]] = []
        for n in range(ROUNDS):
            floor = _closed(floor_port, floor_raw, phase)
            # Enough unique events for the gateway to run as fast as the floor just did.
            reqs = build_requests(port, int(floor.throughput * phase * 1.5) + 1000)
            spies = (benchlib.profile(workers, phase, profile_dir, "web")
                     if profile_dir and n == 0 else [])
            gateway = _closed(port, reqs.raw, phase)
            for spy in spies:
                spy.wait()
            acked += [reqs.event_ids[i] for i in gateway.acked]
            rounds.append((floor, gateway))
        floor_rate = statistics.median(f.throughput for f, _ in rounds)
        own_rate = max(statistics.median(g.throughput for _, g in rounds) / 2, 10.0)
        floor_half = _open(floor_port, floor_raw, seconds, floor_rate / 2)
        half_reqs = build_requests(port, int(floor_rate / 2 * seconds * 1.1) + 500)
        half = _open(port, half_reqs.raw, seconds, floor_rate / 2)
        own_reqs = build_requests(port, int(own_rate * seconds * 1.1) + 200)
        own_half = _open(port, own_reqs.raw, seconds, own_rate)
        acked += [half_reqs.event_ids[i] for i in half.acked]
        acked += [own_reqs.event_ids[i] for i in own_half.acked]
        memory = {f"web worker {pid}": benchlib.rss_mb(pid) for pid in workers}
        memory["web master"] = benchlib.rss_mb(proc.pid)
    finally:
        benchlib.stop(proc)
        benchlib.stop(floor_proc)
    # A worker gunicorn killed for missing its 30-second heartbeat dropped its requests midway
    # (the load generator resends them): the only way a delivery appended to its stream can be
    # left with no drain job before its flag expires.
    timeouts = (workdir / "web.log").read_text(errors="replace").count("WORKER TIMEOUT")
    middle = sorted(rounds, key=lambda r: r[1].throughput / max(r[0].throughput, 1e-9))
    median_round = middle[len(middle) // 2]  # the round whose ratio is the median
    floor_full, full = median_round
    statuses = Counter[int]()
    for _, g in rounds:
        statuses += g.statuses
    return {
        "ratio": statistics.median(g.throughput / f.throughput for f, g in rounds
                                   if f.throughput),
        "rounds": [{"floor": f.throughput, "gateway": g.throughput} for f, g in rounds],
        "floor": {"throughput": floor_full.throughput, "p50_ms": floor_half.percentile(50),
                  "p99_ms": floor_half.percentile(99),
                  "closed_p50_ms": floor_full.percentile(50),
                  "closed_p99_ms": floor_full.percentile(99), "exhausted": floor_full.exhausted},
        "gateway": {"throughput": full.throughput, "p50_ms": half.percentile(50),
                    "p99_ms": half.percentile(99), "closed_p50_ms": full.percentile(50),
                    "closed_p99_ms": full.percentile(99),
                    "statuses": dict(statuses + half.statuses),
                    "exhausted": any(g.exhausted for _, g in rounds),
                    "half_rate": floor_rate / 2, "memory_mb": memory,
                    "reconnects": sum(g.reconnects for _, g in rounds) + half.reconnects
                    + own_half.reconnects,
                    "own_half_rate": own_rate, "own_half_p50_ms": own_half.percentile(50),
                    "own_half_p99_ms": own_half.percentile(99), "worker_timeouts": timeouts,
                    **verify(env, acked)},
    }


def verify(env: dict[str, str], acked: list[str]) -> dict[str, Any]:
    """Every acknowledged event is in the inbox: in the table, or (the Redis inbox) in its
    partition's stream; and every partition holding events has a drain scheduled."""
    import json as json_

    from sqlalchemy import select

    from ledger.models import InboxEvent
    from service.bootstrap import Container
    from service.config import load_settings
    from workers.dispatch import flag_key, list_key, stream_key

    container = Container(load_settings(env))
    with container.engine.connect() as conn:
        rows = conn.execute(select(InboxEvent.id, InboxEvent.event_id, InboxEvent.status)).all()
    stored_ids = {r.event_id for r in rows}
    streamed: set[str] = set()
    unscheduled = 0
    queued: set[int] = set()
    for p in range(container.settings.partitions):
        queued.update(int(i) for i in container.redis.lrange(list_key(p), 0, -1))
        start, entries = "-", 0
        while batch := cast(list[Any], container.redis.xrange(stream_key(p), start, "+",
                                                                count=5000)):
            for _entry_id, fields in batch:
                if b"meta" in fields:
                    streamed.add(json_.loads(fields[b"meta"])["event_id"])
            entries += len(batch)
            start = "(" + batch[-1][0].decode()
        if entries and not container.redis.exists(flag_key(p)):
            unscheduled += 1
    pending = {r.id for r in rows if r.status == "pending"}
    drain_jobs = container.queue.count
    inbox = container.settings.inbox
    container.close()
    missing = [e for e in acked if e not in stored_ids and e not in streamed]
    return {"acked": len(acked), "stored": len(rows), "streamed": len(streamed),
            "inbox": inbox, "missing_from_inbox": len(missing), "pending": len(pending),
            "not_enqueued": len(pending - queued) + unscheduled,
            "drain_jobs_queued": drain_jobs,
            "durable_and_enqueued": not missing and not unscheduled and pending <= queued
            and len(acked) <= len(rows) + len(streamed)}


def run(seconds: float, database_url: str | None, redis_url: str | None,
        profile_dir: Path | None = None) -> dict[str, Any]:
    with (benchlib.data_dir("ingest") as workdir,
          benchlib.persistent_redis(redis_url, workdir) as (redis_url, redis_kind)):
        if redis_url:
            benchlib.clear_redis(redis_url)
        with benchlib.scratch_database(database_url, workdir) as url:
            found = measure(seconds, workdir, url, redis_url, profile_dir)
    gateway = found["gateway"]
    return {**found, "redis": redis_kind,
            "throughput_met": found["ratio"] >= THROUGHPUT_TARGET
            and gateway["durable_and_enqueued"],
            "p99_met": gateway["p99_ms"] < P99_TARGET_MS,
            "backend": "postgresql" if benchlib.is_postgres_url(database_url) else "sqlite"}


def report(r: dict[str, Any]) -> str:
    f, g = r["floor"], r["gateway"]
    return "\n".join([
        f"ingest ({r['backend']}): gateway {g['throughput']:,.0f} events/s, floor (bare Flask) "
        f"{f['throughput']:,.0f} req/s: {r['ratio']:.0%} of the floor (target >= "
        f"{THROUGHPUT_TARGET:.0%}){'' if not g['exhausted'] else ' [ran out of requests]'}",
        "  the median of " + f"{len(r['rounds'])} rounds, floor and gateway alternating (req/s, "
        "floor / gateway): " + ", ".join(f"{x['floor']:,.0f} / {x['gateway']:,.0f}"
                                         for x in r["rounds"]),
        f"  at {g['half_rate']:,.0f}/s (half the floor): p50 {g['p50_ms']:.1f} ms, p99 "
        f"{g['p99_ms']:.1f} ms (target p99 < {P99_TARGET_MS:g} ms); floor p50 "
        f"{f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms",
        f"  at {g['own_half_rate']:,.0f}/s (half the gateway's own throughput): p50 "
        f"{g['own_half_p50_ms']:.1f} ms, p99 {g['own_half_p99_ms']:.1f} ms",
        f"  at full load: gateway p50 {g['closed_p50_ms']:.1f} ms p99 {g['closed_p99_ms']:.1f} ms;"
        f" floor p50 {f['closed_p50_ms']:.1f} ms p99 {f['closed_p99_ms']:.1f} ms",
        f"  inbox: {g['inbox']}, Redis: {r['redis']}; a 2xx means "
        + ("the delivery's append to its stream was fsync'd to Redis's AOF"
           if g["inbox"] == "redis" else "the delivery's row was committed to the database"),
        f"  acknowledged {g['acked']:,}, in the inbox table {g['stored']:,}, in a Redis stream "
        f"{g['streamed']:,}, missing from the inbox {g['missing_from_inbox']}, waiting with no "
        f"drain scheduled {g['not_enqueued']}, "
        f"drain jobs queued {g['drain_jobs_queued']}; statuses {g['statuses']}; connections "
        f"closed under a request (resent) {g['reconnects']}; web workers killed for a missed "
        f"heartbeat {g.get('worker_timeouts', 0)}",
        "  memory (MB, current/peak): " + ", ".join(
            f"{k} {v[0]:.0f}/{v[1]:.0f}" for k, v in g["memory_mb"].items()),
    ])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase (default 10)")
    parser.add_argument("--database-url", default=None, help="PostgreSQL (default: SQLite)")
    parser.add_argument("--redis-url", default=None, help="a Redis server (default: embedded)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample the web workers with py-spy at full load; stacks in DIR")
    args = parser.parse_args()
    result = run(args.seconds, args.database_url, args.redis_url, args.profile)
    print(report(result))
    if args.profile:
        print(benchlib.summarise_profile(sorted(args.profile.glob("web-*.txt"))))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))
    return 0 if result["throughput_met"] and result["p99_met"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
