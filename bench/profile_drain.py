"""Where the drain's time goes, in one process: statements, Python calls and CPU per event.

    python bench/profile_drain.py [--events 4000] [--database-url URL] [--redis-url URL]
                                  [--top 30] [--sort tottime|cumulative] [--no-profile]
                                  [--callers]

The same events as ``bench_drain.py`` (``realistic_events``), stored and handed out the same way,
then applied in this process by ``workers.drain.process_batch``, batch by batch in each
partition's order, with the fake providers answering. It prints what does not depend on the
machine (SQL statements per event, by kind; Python function calls per event, from cProfile) and
what does (CPU per event, with and without the profiler), then the top functions. Use it to
judge a change to the drain by counting, on a machine too busy for ``bench_drain.py``.
``--callers`` also says, for each kind of statement, which of the project's functions asked for
it (the innermost frame outside the ledger's query helpers), per event.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib
from bench_drain import environment, preload, realistic_events

_FROM = re.compile(r"\bFROM\s+(\S+)", re.IGNORECASE)


def _statement_kind(sql: str) -> str:
    words = sql.split()
    head = words[0].upper() if words else "?"
    if head in ("INSERT", "UPDATE", "DELETE"):
        table = (words[2] if head != "UPDATE" else words[1]).strip('"')
        return f"{head} {table}"
    if head == "SELECT":
        found = _FROM.search(sql)
        table = found.group(1).strip('"') if found else "-"
        lock = " FOR UPDATE" if "FOR UPDATE" in sql.upper() else ""
        return f"SELECT {table}{lock}"
    return head


# Helpers that run statements for others: a statement is charged to whoever called them.
_HELPERS = ("ledger/db.py", "ledger/objects.py", "ledger/locks.py", "workers/drain.py")


def _caller() -> str:
    """The innermost project function on the stack outside the query helpers (else the
    innermost project one at all)."""
    root = str(benchlib.ROOT) + "/"
    first = None
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(root) and "/site-packages/" not in name:
            where = f"{name[len(root):]}:{frame.f_code.co_name}"
            first = first or where
            if not name[len(root):].startswith(_HELPERS):
                return where
        frame = frame.f_back  # type: ignore[assignment]
    return first or "?"


def run(events: int, database_url: str | None, redis_url: str | None, top: int, sort: str,
        profile: bool, callers: bool = False) -> dict[str, Any]:
    from sqlalchemy import event

    from service.bootstrap import Container, install
    from service.config import load_settings
    from workers.drain import process_batch

    with environment(database_url, redis_url, "profile-drain") as (env, queue_url, fake):
        env["REDIS_URL"] = queue_url
        container = install(Container(load_settings(env)))
        stream = realistic_events(events)
        for _, _, raw in stream:
            fake.observe(json.loads(raw))
        by_partition = preload(container, stream, streamed=False)
        size = container.settings.batch_size
        batches = [ids[i:i + size] for _, ids in sorted(by_partition.items())
                   for i in range(0, len(ids), size)]
        statements: Counter[str] = Counter()
        asked_by: Counter[tuple[str, str]] = Counter()

        def count(conn: Any, cursor: Any, sql: str, *args: Any) -> None:
            statements[_statement_kind(sql)] += 1
            if callers:
                asked_by[(_statement_kind(sql), _caller())] += 1

        event.listen(container.engine, "before_cursor_execute", count)
        profiler = cProfile.Profile() if profile else None
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        applied = sum(process_batch(container, batch) for batch in batches)
        if profiler:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        event.remove(container.engine, "before_cursor_execute", count)
        container.close()
    out: dict[str, Any] = {
        "backend": "postgresql" if benchlib.is_postgres_url(database_url) else "sqlite",
        "events": applied, "batches": len(batches),
        "statements_per_event": sum(statements.values()) / applied,
        "statements": dict(statements.most_common()),
        "cpu_ms_per_event": 1000 * cpu / applied, "wall_ms_per_event": 1000 * wall / applied,
        "profiled": profile,
        "callers": [(kind, who, n) for (kind, who), n in asked_by.most_common()],
    }
    if profiler:
        stats = pstats.Stats(profiler)
        out["calls_per_event"] = stats.total_calls / applied  # type: ignore[attr-defined]
        text = io.StringIO()
        stats.stream = text  # type: ignore[attr-defined]
        stats.sort_stats(sort).print_stats(top)
        out["top"] = text.getvalue()
        out["by_package"] = _by_package(stats)
    return out


def _by_package(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time (tottime) summed by where the code lives: a library's subpackage, a project
    module, the standard library, or built-ins."""
    own: Counter[str] = Counter()
    root = str(benchlib.ROOT) + "/"
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in filename:
            parts = filename.split("site-packages/", 1)[1].split("/")
            where = "/".join(parts[:2]) if len(parts) > 2 else parts[0]
        elif filename.startswith(root):
            where = filename[len(root):]
        elif filename.startswith("~") or filename.startswith("<"):
            where = "built-ins"
        else:
            where = "stdlib"
        own[where] += tottime
    total = sum(own.values()) or 1.0
    return [(where, 100 * seconds / total) for where, seconds in own.most_common(25)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (default: SQLite)")
    parser.add_argument("--redis-url", default=None, help="a Redis server (default: embedded)")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--sort", choices=("tottime", "cumulative"), default="tottime")
    parser.add_argument("--no-profile", action="store_true",
                        help="no cProfile: CPU per event without its overhead")
    parser.add_argument("--callers", action="store_true",
                        help="which project function asked for each kind of statement")
    args = parser.parse_args()
    r = run(args.events, args.database_url, args.redis_url, args.top, args.sort,
            not args.no_profile, args.callers)
    print(f"drain in process ({r['backend']}): {r['events']:,} events in {r['batches']} batches; "
          f"{r['statements_per_event']:.2f} statements/event"
          + (f", {r['calls_per_event']:,.0f} Python calls/event" if r["profiled"] else "")
          + f"; CPU {r['cpu_ms_per_event']:.2f} ms/event, wall {r['wall_ms_per_event']:.2f}"
          + (" (under cProfile)" if r["profiled"] else ""))
    width = max(map(len, r["statements"]), default=0)
    for kind, n in r["statements"].items():
        print(f"  {kind:<{width}}  {n / r['events']:.3f}/event")
    if r["callers"]:
        print("asked for by (statements per event):")
        for kind, who, n in r["callers"]:
            print(f"  {n / r['events']:.3f}  {kind:<{width}}  {who}")
    if r["profiled"]:
        print("own time by package (% of the profile):")
        print("\n".join(f"  {where:<40} {share:5.1f}%" for where, share in r["by_package"]))
        print(r["top"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
