"""The `gateway` command: run the web app, the worker and the clock; migrate the database;
look into the inbox and replay events; decide a Case; reconcile and backfill; and the sandbox
tools (simulate, demo). `gateway COMMAND --help` describes each command's options."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli import checks, errors, sandbox_commands
from cli.errors import CliError
from service.errors import GatewayError
from service.web import GUNICORN_ARGS

if TYPE_CHECKING:

    from service.bootstrap import Container
    from service.config import Settings

log = logging.getLogger("gateway")

# The web server as the Procfile runs it; `gateway serve` and the demo use the same line.
# Processes whose lines a log pipeline reads: JSON unless LOG_FORMAT says otherwise.
_SERVICES = ("serve", "worker", "clock")


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: configure logging, then run the command."""
    from service.logs import configure_logging

    argv = list(sys.argv[1:] if argv is None else argv)
    service = bool(argv) and argv[0] in _SERVICES
    configure_logging(log_format=os.environ.get("LOG_FORMAT") or ("json" if service else "text"))
    return run(argv)


def run(argv: Sequence[str] | None = None) -> int:
    """Run one `gateway` command. A user error (ours, or argparse's) is one line on standard
    error and exit status 2 (cli.errors)."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # named by the command that did not take them, with its help
        errors.command_parser(parser, argv if argv is not None else sys.argv[1:]).error(
            f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args) or 0)
    except GatewayError as exc:  # CliError included
        return errors.report(exc)


def _parser() -> argparse.ArgumentParser:
    parser = errors.Parser(prog="gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the web app under gunicorn (the database must be "
                                     "migrated: gateway db upgrade)")
    p.add_argument("--bind", default=f"127.0.0.1:{os.environ.get('PORT', '8000')}",
                   help="HOST:PORT to listen on (default: 127.0.0.1:$PORT, else 8000)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("worker", help="run an RQ worker that drains the inbox")
    p.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("clock", help="run the sweeper (and scheduled jobs) every few seconds")
    p.add_argument("--interval", type=float, default=15.0,
                   help="seconds between runs (default: 15)")
    p.add_argument("--once", action="store_true", help="run once and exit")
    p.set_defaults(func=cmd_clock)

    db = sub.add_parser("db", help="database maintenance").add_subparsers(
        dest="db", required=True, metavar="COMMAND")
    db.add_parser("upgrade", help="apply the Alembic migrations (the release step; one "
                                  "upgrader at a time)").set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("replay", help="hand dead-lettered (or named) events to the workers again")
    p.add_argument("event_ids", nargs="*", help="provider event ids (evt_..., WH-...)")
    p.add_argument("--failed", action="store_true", help="every dead-lettered event")
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("inbox", help="counts by status, and the failed events with their errors")
    p.add_argument("--status", default="dead", type=_inbox_status,
                   help="list events in this status: pending, processed, ignored, retry or "
                        "dead (default: dead), or the deliveries the inbox table refused "
                        "(refused, with the Redis inbox)")
    p.add_argument("--limit", type=_positive, default=20,
                   help="list at most this many events (default: 20)")
    p.set_defaults(func=cmd_inbox)

    p = sub.add_parser("simulate", help="send a signed sample event, like `stripe trigger`")
    p.add_argument("provider", choices=["stripe", "paypal"], help="whose event to send")
    p.add_argument("event_type", help="e.g. charge.succeeded or PAYMENT.SALE.COMPLETED "
                                      "(an unknown type lists the known ones)")
    p.add_argument("--merchant", required=True, help="a merchant in the merchants file")
    p.add_argument("--url", default="http://127.0.0.1:8000",
                   help="the running gateway's base address (default: http://127.0.0.1:8000)")
    p.add_argument("--key", default=None, help="scenario key: the same key gives the same ids")
    p.add_argument("--at", type=_time, default=None,
                   help="when the event happens, ISO 8601 (default: now)")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("demo", help="run web, worker and clock on the embedded defaults and "
                                    "send signed events for every merchant")
    p.add_argument("--data-dir", default="var/demo",
                   help="where the demo keeps its database, Redis and certificates "
                        "(default: var/demo)")
    p.set_defaults(func=cmd_demo)
    sandbox_commands.register(sub)

    policy = sub.add_parser("policy", help="the policy engine").add_subparsers(
        dest="policy", required=True, metavar="COMMAND")
    p = policy.add_parser("evaluate", help="decide a Case (JSON file, or - for stdin)")
    p.add_argument("case_file", help="a Case as JSON (docs/case.md), or - for standard input")
    p.add_argument("--merchant", required=True, help="decide under this merchant's policy pack")
    p.add_argument("--at", default=None, help="decision time, ISO 8601 (default: now)")
    p.add_argument("--explain", action="store_true", help="a readable account, not JSON")
    p.set_defaults(func=cmd_policy_evaluate)

    report = sub.add_parser("report", help="finance reports").add_subparsers(
        dest="report", required=True, metavar="COMMAND")
    p = report.add_parser("reconcile", help="ledger against provider records, for a period; "
                                            "exit 1 when discrepancies are found")
    p.add_argument("--merchant", required=True, help="a merchant in the merchants file")
    p.add_argument("--from", dest="start", required=True, type=_date,
                   help="the period's first day, YYYY-MM-DD")
    p.add_argument("--to", dest="end", required=True, type=_date,
                   help="the day after the period's last, YYYY-MM-DD (exclusive)")
    p.add_argument("--format", choices=["csv", "json", "html"], default="csv",
                   help="csv: the discrepancies; json: everything; html: a page (default: csv)")
    p.add_argument("--provider-export", action="append", default=[], type=Path,
                   help="a Stripe balance history or PayPal activity CSV (repeatable); "
                        "without one, the providers' APIs are read")
    p.add_argument("--output", type=Path, help="write here instead of standard output")
    p.add_argument("--base-url", help="the gateway's public address, for the HTML report's "
                                      "event links (default: GATEWAY_PUBLIC_URL; none: no links)")
    p.set_defaults(func=cmd_report_reconcile)

    p = sub.add_parser("backfill", help="fetch events the inbox never received, and process them")
    p.add_argument("--merchant", required=True, help="a merchant in the merchants file")
    p.add_argument("--provider", choices=["stripe", "paypal"], required=True,
                   help="whose event listing to read")
    p.add_argument("--from", dest="start", required=True, type=_date,
                   help="the period's first day, YYYY-MM-DD")
    p.add_argument("--to", dest="end", required=True, type=_date,
                   help="the day after the period's last, YYYY-MM-DD (exclusive)")
    p.add_argument("--list", action="store_true", help="only list the missed events")
    p.set_defaults(func=cmd_backfill)

    return parser


def _time(value: str) -> datetime:
    from gateway.envelope import parse_time

    parsed = parse_time(value)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time")
    return parsed


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a YYYY-MM-DD date") from None


def cmd_report_reconcile(args: argparse.Namespace) -> int:
    from cli.progress import progress_line
    from reports.run import reconcile, render
    from reports.sources import detect_export
    from service.config import load_settings, public_url

    settings = load_settings()
    merchant = checks.merchant(settings, args.merchant)
    checks.period(args.start, args.end)
    base_url = public_url(args.base_url or "", "--base-url")
    for path in args.provider_export:  # an export of the wrong shape names its missing columns
        detect_export(checks.input_file(path, "--provider-export"))
    if args.output:
        checks.output_file(args.output, "--output")
    with _ledger(settings) as container, progress_line(sys.stderr) as progress:
        result = reconcile(container, merchant, args.start, args.end, args.provider_export,
                           base_url=base_url, progress=progress.show if progress else None)
    with (open(args.output, "w", encoding="utf-8", newline="") if args.output
          else contextlib.nullcontext(sys.stdout)) as out:
        for chunk in render(result, args.format):
            out.write(chunk)
    found = len(result["discrepancies"])
    print(f"{found} discrepancies", file=sys.stderr)
    return 1 if found else 0


def cmd_backfill(args: argparse.Namespace) -> int:
    from reports.backfill import backfill, missed_events
    from reports.build import period
    from service.config import load_settings

    settings = load_settings()
    merchant = checks.merchant(settings, args.merchant)
    checks.period(args.start, args.end)
    start, end = period(args.start, args.end)
    with _ledger(settings) as container:
        if args.list:
            for event in missed_events(container, merchant, args.provider, start, end):
                print(json.dumps(event, default=str))
            return 0
        stored = backfill(container, merchant, args.provider, start, end)
    print(f"stored and enqueued {stored} missed event(s)")
    return 0


@contextmanager
def _ledger(settings: Settings | None = None) -> Iterator[Container]:
    """A container for a command that reads the ledger, once the ledger is found at the head
    revision (never creating one), closed (connections released) when the command ends."""
    from service.bootstrap import build
    from service.config import load_settings

    settings = settings or load_settings()
    checks.ledger_ready(settings)
    container = build(settings)
    try:
        yield container
    finally:
        container.close()


REFUSED = "refused"  # `gateway inbox --status refused`: the Redis inbox's refused stream


def _inbox_status(value: str) -> str:
    from ledger.models import InboxStatus

    if value == REFUSED:
        return value
    try:
        return InboxStatus(value).value
    except ValueError:
        known = ", ".join([*(s.value for s in InboxStatus), REFUSED])
        raise argparse.ArgumentTypeError(f"{value!r} is not an inbox status ({known})") from None


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number above 0")
    return number


def cmd_serve(args: argparse.Namespace) -> int:
    from service.bootstrap import build

    container = build()
    _require_head_when_reachable(container.settings.database_url)
    _ = container.redis_url  # start the embedded Redis once, before the workers fork
    # gunicorn of this interpreter: .venv/bin need not be on PATH
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", args.bind,
                              *GUNICORN_ARGS])
    return 0  # pragma: no cover - exec does not return


def cmd_worker(args: argparse.Namespace) -> int:
    """Run RQ's worker until asked to stop (SIGTERM or SIGINT: exit status 0), through Redis
    outages.

    While RQ's loop runs, a stop is RQ's warm shutdown: the job in hand finishes first. Outside
    it (a worker starting, or waiting for Redis to come back) the stop is noted at once and the
    worker exits without waiting for Redis, whatever Redis does."""
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from rq.exceptions import StopRequested

    from service.bootstrap import build, install
    from service.scrape import serve_metrics_if_configured
    from workers.intake import check_persistence

    container = install(build())
    check_persistence(container.settings, container.redis)  # before waiting for the database
    _require_head_when_reachable(container.settings.database_url)
    serve_metrics_if_configured(container)
    stop = _WorkerStop()
    worker_class = _stoppable_worker(stop)
    # RQ adds no handler of its own while the root logger has ours: its lines are JSON too.
    worker = None
    while not stop.requested:
        try:
            try:
                stop.install(interrupt=True)  # until RQ installs its own, just below
                # Non-forking: a drain job runs many events, so a fork per job buys nothing.
                worker = worker_class([container.queue], connection=container.redis)
                worker.work(burst=args.burst, logging_level=os.environ.get("LOG_LEVEL", "INFO"))
                return 0
            finally:
                stop.install(interrupt=False)  # RQ's handlers belong to the worker that ended
        except (_Stopping, StopRequested):
            _forget(worker)  # stopped between registering and RQ's own handlers: unregister
            break
        except (RedisConnectionError, RedisTimeoutError):
            if stop.requested:
                break
            # RQ quits when Redis goes away in the middle of a job. Like the clock, the worker
            # outlives the outage: it starts again once Redis answers, and the sweeper re-pushes
            # whatever the interrupted drain had taken.
            log.exception("worker lost Redis; starting again in 2 s")
            stop.sleep(2)
    log.info("worker stopped on request")
    return 0


def _forget(worker: Any) -> None:
    """Unregister a worker whose start was abandoned, if Redis answers at once (best effort:
    otherwise its registration expires by itself)."""
    from redis.exceptions import RedisError

    if worker is None:
        return
    try:
        worker.register_death()
    except RedisError:
        log.info("could not unregister the worker; its registration expires by itself")


class _Stopping(BaseException):
    """Raised by the stop signal's handler to abandon a worker's start (not an Exception, so
    that nothing on the way catches it)."""


class _WorkerStop:
    """SIGTERM and SIGINT while RQ's own handlers are not installed: set ``requested``; while a
    worker is starting (``interrupt``), also abandon the start at once (``_Stopping``)."""

    def __init__(self) -> None:
        self.requested = False
        self.interrupt = False

    def install(self, interrupt: bool) -> None:
        import signal

        self.interrupt = interrupt
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        if interrupt and self.requested:  # asked between the loop's test and here
            raise _Stopping

    def _on_signal(self, signum: int, frame: object) -> None:
        self.requested = True
        if self.interrupt:
            raise _Stopping

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, in steps of a tenth of a second, unless asked to stop."""
        end = time.monotonic() + seconds
        while not self.requested and (left := end - time.monotonic()) > 0:
            time.sleep(min(0.1, left))


def _stoppable_worker(stop: _WorkerStop) -> type:
    """RQ's non-forking worker, telling ``stop`` when RQ's handlers receive the signal, and not
    held up by a Redis that is gone once it has been asked to stop."""
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
    from redis.retry import Retry
    from rq import SimpleWorker

    # rq's SimpleWorker methods are unannotated: calling them is an untyped call.
    class Worker(SimpleWorker):
        def request_stop(self, signum: int, frame: object) -> None:
            stop.requested = True
            super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

        def set_shutdown_requested_date(self) -> None:
            try:  # a note for `rq info`; a Redis that is gone must not fail the job in hand
                super().set_shutdown_requested_date()  # type: ignore[no-untyped-call]
            except RedisError:
                log.warning("could not note the stop request in Redis")

        def teardown(self) -> None:
            if stop.requested:  # one try at each call: redis-py's retries take seconds
                self.connection.set_retry(Retry(NoBackoff(), 0))
            super().teardown()  # type: ignore[no-untyped-call]

    return Worker


def cmd_clock(args: argparse.Namespace) -> int:
    from service import metrics
    from service.bootstrap import build
    from service.scrape import serve_metrics_if_configured
    from workers.scheduled import run_scheduled
    from workers.sweeper import sweep

    container = build()
    _require_head_when_reachable(container.settings.database_url)
    serve_metrics_if_configured(container)
    for signum in (signal.SIGTERM, signal.SIGINT):  # exit 0, through atexit (embedded Redis)
        signal.signal(signum, lambda signum, frame: sys.exit(0))
    while True:
        try:
            sweep(container)
            run_scheduled(container)  # overdue invoices, notices, the notifier
        except Exception:  # the clock must outlive a database or Redis outage
            metrics.JOB_FAILURES.labels("clock").inc()
            log.exception("clock run failed; trying again in %.0f s", args.interval)
        if args.once:
            return 0
        time.sleep(args.interval)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    """The release step: migrate to the head revision. Several at once (a rolling deploy on
    many hosts) take turns under ledger.migrate's lock; the later ones find nothing to do."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import OperationalError

    from ledger.migrate import upgrade
    from service.config import load_settings

    url = load_settings().database_url
    try:
        upgrade(url)
    except OperationalError as exc:  # no answer, or refused: nothing to migrate, say so
        where = make_url(url).render_as_string(hide_password=True)
        raise CliError(f"the database {where} cannot be reached: {exc.orig}") from None
    print("database is at the latest revision")
    return 0


def _require_head_when_reachable(url: str) -> None:
    """Return once the database answers and is at the head revision; a process (re)started
    during a database outage waits for it, as the clock does, instead of exiting. A database
    that answers but is not at head raises DatabaseNotAtHead (exit status 2, one line naming the
    database, both revisions and `gateway db upgrade`): serve, worker and clock never migrate."""
    from sqlalchemy.exc import OperationalError

    from ledger.migrate import require_head

    while True:
        try:
            return require_head(url)
        except OperationalError:
            log.exception("database unreachable; trying again in 2 s")
            time.sleep(2)


def cmd_replay(args: argparse.Namespace) -> int:
    from workers.sweeper import event_statuses, replay

    if not args.failed and not args.event_ids:
        raise CliError("replay: name event ids, or pass --failed for every dead event")
    if args.failed and args.event_ids:
        raise CliError("replay: name event ids or pass --failed, not both")
    with _ledger() as container:
        statuses = event_statuses(container, args.event_ids) if args.event_ids else {}
        unknown = [e for e in args.event_ids if e not in statuses]
        if unknown:
            raise CliError(f"replay: the inbox holds no event {', '.join(unknown)} (`gateway "
                           f"inbox` lists events; nothing was replayed)")
        count = replay(container, args.event_ids or None)
    settled = sorted(e for e, found in statuses.items()
                     if found <= {"processed", "ignored"})
    note = (f"; not replayed (already processed or ignored): {', '.join(settled)}"
            if settled else "")
    print(f"re-enqueued {count} event(s){note}")
    return 0 if count or args.failed else 1


def cmd_inbox(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from ledger.inbox import counts_by_status
    from ledger.models import InboxEvent

    query = (select(InboxEvent).where(InboxEvent.status == args.status)
             .order_by(InboxEvent.id).limit(args.limit))
    with _ledger() as container, container.sessions() as session:
        print(json.dumps(counts_by_status(container.engine), sort_keys=True))
        if container.settings.inbox == "redis":
            refused, rows = container.intake.refused(args.limit)
            print(json.dumps({"in_redis_streams": container.intake.in_streams(
                container.settings.partitions), "refused": refused}, sort_keys=True))
            if args.status == REFUSED:
                for r in rows:
                    print(f"{r['entry_id']}\t{r['merchant']}\t{r['provider']}\t{r['event_id']}\t"
                          f"{r['event_type']}\t{r['reason']}")
        elif args.status == REFUSED:
            raise CliError("inbox: --status refused lists the Redis inbox's refused "
                           "deliveries; this gateway stores deliveries in the inbox table "
                           "(GATEWAY_INBOX=database)")
        for row in session.scalars(query):
            print(f"{row.id}\t{row.merchant}\t{row.provider}\t{row.event_id}\t{row.event_type}\t"
                  f"attempts={row.attempts}\t{row.last_error or row.status_reason or ''}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from sandbox.simulate import simulate
    from service.config import load_settings

    settings = load_settings()
    checks.merchant(settings, args.merchant)
    result = simulate(args.provider, args.event_type, args.merchant, args.url, key=args.key,
                      at=args.at)
    print(json.dumps({"status": result.status, "event_id": result.event_id,
                      "response": result.body}, indent=2))
    if _error_code(result.body) == "cert_fetch_failed" and args.provider == "paypal":
        print("gateway: the gateway could not fetch the development certificate this sample "
              "is signed with: start `gateway serve` with GATEWAY_PAYPAL_CA_FILE="
              f"{settings.data_dir / 'devcerts' / 'ca.pem'} (the demo does)", file=sys.stderr)
    return 0 if 200 <= result.status < 300 else 1


def _error_code(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


def cmd_policy_evaluate(args: argparse.Namespace) -> int:
    from datetime import datetime

    from gateway.envelope import parse_time
    from policy import PolicyError, case_from_json, decision_to_json, evaluate, explain, load_pack
    from service.config import load_settings

    merchant = checks.merchant(load_settings(), args.merchant)
    at = parse_time(args.at) if args.at else datetime.now(UTC)
    if at is None:
        raise CliError(f"--at {args.at!r} is not an ISO 8601 time")
    source = "standard input" if args.case_file == "-" else args.case_file
    if args.case_file != "-":
        checks.input_file(Path(args.case_file), "CASE_FILE")
    try:
        text = sys.stdin.read() if args.case_file == "-" else Path(args.case_file).read_text(
            encoding="utf-8")
        case = case_from_json(json.loads(text))
        decision = evaluate(load_pack(merchant.policy_pack), case, at)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CliError(f"{source} is not JSON: {exc}") from None
    except PolicyError as exc:
        raise CliError(f"{source}: {exc}") from None
    print(explain(decision) if args.explain else json.dumps(decision_to_json(decision), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sandbox.demo import run_demo

    return run_demo(Path(args.data_dir))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
