"""Run every benchmark and rewrite bench/RESULTS.md with the figures, their floors and targets.

    bench/run [--quick] [--profile]        (or: python bench/run_all.py ...)

Policy, ingest, drain, reports and memory, on the embedded default (SQLite and the embedded
Redis) and, when DATABASE_URL points at PostgreSQL, again on PostgreSQL (with REDIS_URL's Redis
when it is set). Each benchmark runs in its own process, and each database benchmark in a
scratch database created beside DATABASE_URL's and dropped afterwards. ``--quick`` uses small
sizes to try things out (its figures are not comparable with the targets); ``--profile`` samples
the web workers and the queue worker with py-spy and writes the hottest frames to
bench/profiles/. The part of RESULTS.md below its notes marker is kept from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchlib

RESULTS = benchlib.BENCH / "RESULTS.md"
NOTES_MARKER = "<!-- Notes below this line are kept when bench/run rewrites the file. -->"


class Sizes(TypedDict):
    policy_seconds: float
    ingest_seconds: float
    drain_events: int
    report_entries: int
    floor_jobs: tuple[int, int]


FULL: Sizes = {"policy_seconds": 5, "ingest_seconds": 10, "drain_events": 20_000,
               "report_entries": 1_000_000, "floor_jobs": (2000, 400)}
QUICK: Sizes = {"policy_seconds": 2, "ingest_seconds": 4, "drain_events": 3000,
                "report_entries": 100_000, "floor_jobs": (500, 100)}


def run_policy(seconds: float) -> dict[str, Any]:
    out = _run([str(benchlib.BENCH / "bench_policy.py"), "--seconds", str(seconds)])
    match = re.search(r"([\d,]+) Cases/second sustained", out)
    per_cpu = re.search(r"([\d,]+) Cases per CPU-second", out)
    return {"cases_per_second": _number(match[1]) if match else None,
            "per_cpu_second": _number(per_cpu[1]) if per_cpu else None,
            "reference_ops": reference_rate(), "output": out}


def reference_rate(seconds: float = 1.0) -> float:
    """The floor beside the policy figure: a fixed pure-Python workload (dict building, calls,
    comparisons: what evaluating a Case is made of) per second on one core, in this run."""
    def work(n: int) -> int:
        facts: dict[str, Any] = {"amount": n, "currency": "USD", "days": n % 30}
        return facts["amount"] * 2 if facts["days"] < 14 and facts["currency"] == "USD" else 0

    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(10_000):
            work(i)
        count += 10_000
    return count / (time.perf_counter() - start)


def run_json(script: str, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        path = Path(handle.name)
    try:
        out = _run([str(benchlib.BENCH / script), *args, "--json", str(path)], env=env)
        result = json.loads(path.read_text()) if path.stat().st_size else {"error": out}
        result["output"] = out
        return result
    finally:
        path.unlink(missing_ok=True)


def run_reports(entries: int, database_url: str | None) -> dict[str, Any]:
    with benchlib.data_dir("reports") as workdir, \
            benchlib.scratch_database(database_url, workdir) as url:
        args = [str(benchlib.BENCH / "bench_reports.py"), "--entries", str(entries)]
        if benchlib.is_postgres_url(database_url):
            args += ["--database-url", url]
        out = _run(args)
    seconds = re.search(r"in ([\d.]+) s", out)
    peak = re.search(r"peak RSS ([\d.]+) MB", out)
    return {"seconds": float(seconds[1]) if seconds else None,
            "peak_mb": float(peak[1]) if peak else None, "output": out}


def _run(args: list[str], env: dict[str, str] | None = None) -> str:
    proc = subprocess.run([benchlib.PYTHON, *args], capture_output=True, text=True,
                          cwd=benchlib.ROOT, env=env)
    out = (proc.stdout + proc.stderr).strip()
    print(out, flush=True)
    return out


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def backends(database_url: str | None, redis_url: str | None
             ) -> list[tuple[str, str | None, str | None]]:
    found: list[tuple[str, str | None, str | None]] = [("SQLite + embedded Redis", None, None)]
    if benchlib.is_postgres_url(database_url):
        label = "PostgreSQL + " + ("Redis server" if redis_url else "embedded Redis")
        found.append((label, database_url, redis_url))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to try things out")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy the web and queue workers; summaries in bench/profiles/")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    database_url, redis_url = os.environ.get("DATABASE_URL"), os.environ.get("REDIS_URL")
    started = time.perf_counter()
    info = benchlib.machine() | benchlib.server_versions(database_url, redis_url)
    print(f"machine: {info}", flush=True)
    policy = run_policy(sizes["policy_seconds"])
    runs = []
    for label, db, redis in backends(database_url, redis_url):
        print(f"\n== {label}", flush=True)
        common = (["--database-url", db] if db else []) + (["--redis-url", redis] if redis else [])
        tag = "pg" if db else "sqlite"
        prof_dir = benchlib.BENCH / "profiles" / tag
        ingest = run_json("bench_ingest.py", ["--seconds", str(sizes["ingest_seconds"]), *common,
                                              *(["--profile", str(prof_dir)] if args.profile
                                                else [])])
        drain = run_json("bench_drain.py", ["--events", str(sizes["drain_events"]),
                                            "--floor-jobs", *map(str, sizes["floor_jobs"]),
                                            *common, *(["--profile", str(prof_dir)]
                                                       if args.profile else [])])
        reports = run_reports(sizes["report_entries"], db)
        runs.append({"label": label, "ingest": ingest, "drain": drain, "reports": reports})
        if args.profile:
            write_profiles(prof_dir)
    elapsed = time.perf_counter() - started
    args.output.write_text(render(info, policy, runs, sizes, args.quick, elapsed))
    print(f"\nwrote {args.output} ({elapsed / 60:.1f} min)")
    return 0


def write_profiles(prof_dir: Path) -> None:
    for name in ("web", "worker"):
        files = sorted(prof_dir.glob(f"{name}-*.txt"))
        if files:
            (prof_dir / f"{name}-summary.txt").write_text(benchlib.summarise_profile(files, 40))
            for path in files:
                path.unlink()


def render(info: dict[str, str], policy: dict[str, Any], runs: list[dict[str, Any]],
           sizes: Sizes, quick: bool, elapsed: float) -> str:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results", "",
        f"Written by `bench/run{' --quick' if quick else ''}` on {now} in {elapsed / 60:.1f} "
        "minutes." + (" **Quick sizes: not comparable with the targets.**" if quick else ""), "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()) + ".", "",
        "Every figure stands beside a floor measured in the same run on the same machine, so "
        "the ratio survives a noisy machine better than the figure does. The ingest load "
        "generator (Python, one process per core, keep-alive connections, pre-signed requests) "
        "shares the machine's cores with the server it loads; the floor is measured with the "
        "same generator, so the ratio is fair, but neither figure is what the server would do "
        "with the cores to itself.", "",
        "| benchmark | figure | floor (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    cases, ref = policy["cases_per_second"], policy["reference_ops"]
    lines.append(
        f"| policy | {_fmt(cases)} Cases/s on one core | {_fmt(ref)} reference Python "
        f"calls/s | one Case per {ref / cases:.0f} reference calls | 50,000 Cases/s | "
        f"{_met(cases is not None and cases >= 50_000)} |" if cases else
        "| policy | failed | | | 50,000 Cases/s | no |")
    for run in runs:
        lines += _backend_rows(run)
    lines += ["", "Memory (resident set size, MB, current / peak):", ""]
    for run in runs:
        memory = run["ingest"].get("gateway", {}).get("memory_mb", {})
        web = [v for k, v in memory.items() if k.startswith("web worker")]
        worker = run["drain"].get("worker", {}).get("memory_mb")
        lines.append(
            f"- {run['label']}: each gunicorn web worker after the ingest run "
            + ", ".join(f"{v[0]:.0f} / {v[1]:.0f}" for v in web)
            + (f"; the queue worker at the end of the drain run {worker[0]:.0f} / {worker[1]:.0f}"
               if worker else ""))
    lines += ["", "Details of each run:", ""]
    for run in runs:
        lines += _details(run)
    lines += ["", "How to read and reproduce: `bench/run` (full sizes, about ten minutes per "
              "backend), `bench/run --quick`, `bench/run --profile` (py-spy summaries in "
              "`bench/profiles/`); each benchmark also runs alone, see its docstring.", "",
              NOTES_MARKER, "", ""]
    return "\n".join(lines) + _kept_notes()


def _backend_rows(run: dict[str, Any]) -> list[str]:
    label, ingest, drain, reports = run["label"], run["ingest"], run["drain"], run["reports"]
    rows = []
    if "gateway" in ingest:
        g, f = ingest["gateway"], ingest["floor"]
        where = ("in its Redis stream, fsync'd, its drain scheduled" if g.get("inbox") == "redis"
                 else "committed to the inbox table and enqueued")
        if g["durable_and_enqueued"]:
            durable = f"every acknowledged event {where}"
        elif g["missing_from_inbox"]:
            durable = f"**{g['missing_from_inbox']:,} acknowledged events missing**"
        else:  # stored, but a drain flag expired with no job behind it: the sweeper's case
            durable = (f"every acknowledged event stored; **{g['not_enqueued']} with no drain "
                       "scheduled** (the sweeper's to find)")
        rows.append(f"| ingest, {label} | {g['throughput']:,.0f} events/s ({durable}) | "
                    f"{f['throughput']:,.0f} req/s (bare Flask, same gunicorn) | "
                    f"{ingest['ratio']:.0%} | >= 60% | {_met(ingest['throughput_met'])} |")
        rows.append(f"| ingest latency at {g['half_rate']:,.0f}/s (half the floor), {label} | "
                    f"p50 {g['p50_ms']:.1f} ms, p99 {g['p99_ms']:.1f} ms | p50 "
                    f"{f['p50_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms | "
                    f"{g['p99_ms'] / f['p99_ms']:.1f}x (p99) | p99 < 10 ms | "
                    f"{_met(ingest['p99_met'])} |")
        rows.append(f"| ingest latency at {g['own_half_rate']:,.0f}/s (half its own "
                    f"throughput), {label} | p50 {g['own_half_p50_ms']:.1f} ms, p99 "
                    f"{g['own_half_p99_ms']:.1f} ms | | | (for reading the row above) | |")
    else:
        rows.append(f"| ingest, {label} | failed | | | | no |")
    if "events_per_second" in drain:
        fl, ceiling = drain["floor"], drain["ceiling"]
        rows.append(f"| drain, {label} | {drain['events_per_second']:,.0f} events/s, one worker "
                    f"| the no-op drain (pop, lock, parse, mark, commit): "
                    f"{ceiling['per_second']:,.0f}/s; no-op RQ jobs: "
                    f"{fl['simple']['per_second']:,.0f}/s SimpleWorker | "
                    f"{drain['ratio_ceiling']:.0%} of the no-op drain | "
                    f">= {drain['target']:,} events/s | {_met(drain['met'])} |")
    else:
        rows.append(f"| drain, {label} | failed | | | | no |")
    if reports.get("seconds") is not None:
        ok = reports["seconds"] < 20 and (reports["peak_mb"] or 0) < 500
        rows.append(f"| reports, {label} | {_fmt(sizes_entries(reports))} entries in "
                    f"{reports['seconds']:.1f} s, peak {reports['peak_mb']:.0f} MB | n/a "
                    f"(absolute target) | | < 20 s, < 500 MB | {_met(ok)} |")
    else:
        rows.append(f"| reports, {label} | failed | | | < 20 s, < 500 MB | no |")
    return rows


def sizes_entries(reports: dict[str, Any]) -> float | None:
    match = re.search(r"reconciled ([\d,]+) ledger entries", reports.get("output", ""))
    return _number(match[1]) if match else None


def _details(run: dict[str, Any]) -> list[str]:
    out = [f"**{run['label']}**", "", "```"]
    for key in ("ingest", "drain", "reports"):
        text = run[key].get("output", "")
        out += [line for line in text.splitlines() if line.strip()][:8]
    return out + ["```", ""]


def _kept_notes() -> str:
    if not RESULTS.exists():
        return ""
    text = RESULTS.read_text()
    return text.split(NOTES_MARKER, 1)[1].lstrip("\n") if NOTES_MARKER in text else ""


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:,.0f}"


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


if __name__ == "__main__":
    raise SystemExit(main())
