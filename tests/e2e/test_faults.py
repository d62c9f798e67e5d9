"""Fault suites through the real processes: gunicorn as the Procfile runs it, RQ workers and the
clock, on a Redis server and (for PostgreSQL) a TCP proxy of the test's own, with Stripe and
PayPal answered by the local fake, which counts the refunds it made.

Each test prints one line starting ``FAULTS`` with its figures, for the README's table.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import Table, func, insert, select
from sqlalchemy.engine import make_url

from gateway.envelope import parse_json, paypal_envelope, stripe_envelope
from ledger.inbox import new_event_row
from ledger.models import Action, ActionStatus, InboxEvent, InboxStatus
from sandbox import fake_providers
from sandbox.simulator import encode
from service.bootstrap import Container, install
from service.config import DEFAULT_MERCHANTS_FILE, Settings, load_merchants
from tests.conftest import _clean, make_settings
from tests.e2e.conftest import ROOT, process_env, procfile_line, wait_ready, worker_command
from tests.support.delivery import drain_everything
from tests.support.faults import (
    comparable_snapshot,
    decisions,
    inbox_attempts,
    refund_actions,
    refunds_paid,
)
from tests.support.outages import RedisServer, TcpProxy, free_port, sqlite_write_lock
from tests.support.paypal import shared_signer
from tests.support.providers import assert_money_invariant
from tests.support.sender import ProviderSender
from tests.support.stream import Delivery, overpaid_sales, realistic_stream
from workers.dispatch import partition_of
from workers.sweeper import sweep

pytestmark = pytest.mark.slow

_DONE = (InboxStatus.PROCESSED, InboxStatus.IGNORED)


# -- the orderly run ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a run left: the ledger, the decisions, the refund actions."""

    ledger: dict[str, Any]
    decisions: Any
    refunds: list[tuple[str | None, int, str]]


def _outcome(container: Container) -> Outcome:
    """The clock's overdue-invoice decisions are left out: the running clock may look at a
    shuffled stream's invoice between its (months old) `finalized` and `paid` events, and the
    orderly run has no clock. Every decision that events cause is compared."""
    with container.sessions() as s:
        refunds = sorted((p, a, st) for _, p, a, st in refund_actions(s))
        caused = Counter({k: n for k, n in decisions(s).items() if k[1] != "overdue_invoice"})
        return Outcome(comparable_snapshot(s), caused, refunds)


def _fake_merchants(tmp_path: Path, fake_base: str, name: str) -> Path:
    path = tmp_path / f"merchants-{name}.toml"
    path.write_text(fake_providers.merchants_file_for(fake_base,
                                                      DEFAULT_MERCHANTS_FILE.read_text()))
    return path


@contextmanager
def _fake_provider() -> Iterator[tuple[fake_providers.FakeProviders, str]]:
    fake, server = fake_providers.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def orderly_outcome(container: Container, stream: list[Delivery], tmp_path: Path) -> Outcome:
    """Store ``stream`` once, in order, and let an in-process worker apply it (refunds made at a
    fake provider of its own); then clean the stores. The rows are written directly, as the
    webhook view would write them, because thousands of signed requests in this process take
    longer than the faulty run they are compared with."""
    with _fake_provider() as (fake, base):
        merchants = load_merchants(_fake_merchants(tmp_path, base, "orderly"), {})
        c = install(Container(dataclasses.replace(container.settings, merchants=merchants)))
        try:
            for d in stream:
                fake.observe(d.event)
            _store_in_order(c, stream)
            sweep(c)  # sweep_after_seconds is 0 in tests: hands every row out, in id order
            drain_everything(c)
            outcome = _outcome(c)
            assert_money_invariant(c, fake)
            _clean(c)
        finally:
            install(container)
            c.close()
    return outcome


def _store_in_order(c: Container, stream: list[Delivery]) -> None:
    rows = []
    for d in stream:
        raw = encode(d.event)
        envelope = (stripe_envelope if d.provider == "stripe" else paypal_envelope)(
            parse_json(raw))
        rows.append(new_event_row(
            merchant=c.settings.merchants[d.merchant], provider=d.provider, envelope=envelope,
            livemode=False, raw=raw, headers={},
            partition=partition_of(d.merchant, envelope.object_ref, c.settings.partitions)))
    with c.engine.begin() as conn:
        conn.execute(insert(cast(Table, InboxEvent.__table__)), rows)


# -- the running gateway, with outages of its own -------------------------------------------------


@dataclasses.dataclass
class Stack:
    """gunicorn, workers and the clock on the test's Redis server, and the means to hurt them."""

    base: str
    env: dict[str, str]
    settings: Settings  # what the processes read, but with the database reached directly
    container: Container  # the test's own view of the stores, for checking
    fake: fake_providers.FakeProviders
    redis: RedisServer
    proxy: TcpProxy | None
    spawn: Callable[..., subprocess.Popen[bytes]]
    workers: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)
    kills: int = 0
    db_outages: int = 0

    def start_worker(self, **extra: str) -> None:
        self.workers.append(self.spawn(worker_command(), {**self.env, **extra}, "worker"))

    def kill_worker(self, rng: random.Random) -> None:
        """SIGKILL one running worker, as an OOM kill would, and start another."""
        victim = self.workers.pop(rng.randrange(len(self.workers)))
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        self.kills += 1
        self.start_worker()

    def restart_workers(self, **extra: str) -> None:
        """Stop every worker (a deploy) and start as many again with ``extra`` settings."""
        count = len(self.workers)
        while self.workers:
            proc = self.workers.pop()
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        for _ in range(count):
            self.start_worker(**extra)

    def database_down(self) -> AbstractContextManager[None]:
        """PostgreSQL: the proxy every process connects through refuses and drops connections.
        SQLite: an exclusive write lock, so every writer fails after its busy timeout."""
        self.db_outages += 1
        if self.proxy is not None:
            return self.proxy.down()
        return sqlite_write_lock(str(make_url(self.settings.database_url).database))

    def counts(self) -> dict[str, int]:
        with self.container.sessions() as s:
            return {str(k): v for k, v in s.execute(
                select(InboxEvent.status, func.count()).group_by(InboxEvent.status)).all()}

    def wait_settled(self, expected: int, timeout: float, tick: Callable[[], None] | None = None
                     ) -> dict[str, int]:
        """Until ``expected`` inbox rows are done and every action has ended."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.counts()
            done = sum(counts.get(s, 0) for s in _DONE)
            if done >= expected and sum(counts.values()) == done and self._actions_done():
                return counts
            if time.monotonic() > deadline:
                raise AssertionError(f"not settled after {timeout:.0f} s: {counts}, "
                                     f"actions {self._action_counts()}")
            if tick is not None:
                tick()
            time.sleep(0.3)

    def _action_counts(self) -> dict[str, int]:
        with self.container.sessions() as s:
            return {str(k): v for k, v in s.execute(
                select(Action.status, func.count()).group_by(Action.status)).all()}

    def _actions_done(self) -> bool:
        busy = (ActionStatus.PENDING, ActionStatus.EXECUTING)
        return not any(self._action_counts().get(s) for s in busy)

    def gateway(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the real `gateway` CLI against the stack's stores."""
        return subprocess.run([sys.executable, "-m", "cli.main", *args], env=self.env,
                              cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def stack(container: Container, spawn, tmp_path: Path, paypal_ca_file, database_url):
    """Start the gateway's processes on stores of the test's own; see ``Stack``."""
    made: list[Stack] = []
    cleanup: list[Callable[[], None]] = []

    def start(workers: int = 1, **extra: str) -> Stack:
        fake, server = fake_providers.start()
        cleanup.extend([server.server_close, server.shutdown])  # run in reverse
        fake_base = f"http://127.0.0.1:{server.server_address[1]}"
        merchants_file = _fake_merchants(tmp_path, fake_base, "stack")
        redis_server = RedisServer(tmp_path / "own-redis")
        redis_server.start()
        cleanup.append(redis_server.stop)
        proxy, process_db = _database_for_processes(database_url)
        if proxy is not None:
            cleanup.append(proxy.close)
        settings = make_settings(tmp_path, database_url, redis_server.url, paypal_ca_file,
                                 merchants=load_merchants(merchants_file, {}))
        view = Container(settings)
        cleanup.append(view.close)
        _clean(view)
        port = free_port()
        env = process_env(dataclasses.replace(settings, database_url=process_db),
                          **{"PORT": str(port), "GATEWAY_MERCHANTS_FILE": str(merchants_file),
                             "GATEWAY_SWEEP_AFTER_SECONDS": "5",
                             "GATEWAY_DRAIN_LOCK_SECONDS": "3",
                             "GATEWAY_RETRY_BASE_SECONDS": "1", "GATEWAY_MAX_ATTEMPTS": "8",
                             "GATEWAY_DB_BUSY_TIMEOUT": "2", **extra})
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        s = Stack(f"http://127.0.0.1:{port}", env, settings, view, fake, redis_server, proxy,
                  spawn)
        spawn([procfile_line("web")], env, "web", shell=True)
        for _ in range(workers):
            s.start_worker()
        spawn([sys.executable, "-m", "cli.main", "clock", "--interval", "1"], env, "clock")
        wait_ready(s.base)
        made.append(s)
        return s

    yield start
    for stop in reversed(cleanup):
        stop()


def _database_for_processes(database_url: str) -> tuple[TcpProxy | None, str]:
    """PostgreSQL is reached through a proxy the test can close; SQLite is a file."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None, database_url
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.open()
    return proxy, url.set(host="127.0.0.1", port=proxy.port).render_as_string(
        hide_password=False)


def _retried_errors(session: Any) -> Counter[str]:
    """Why the processed events that took more than one attempt failed before."""
    rows = session.scalars(select(InboxEvent.last_error).where(
        InboxEvent.status == InboxStatus.PROCESSED, InboxEvent.attempts > 1))
    return Counter((error or "").split(":")[0] for error in rows)


def _summary(capsys: pytest.CaptureFixture[str], name: str, **figures: object) -> None:
    line = "FAULTS " + name + " " + " ".join(f"{k}={v}" for k, v in figures.items())
    with capsys.disabled():
        print("\n" + line)


# -- duplicates and shuffled order ----------------------------------------------------------------


def test_duplicated_concurrent_shuffled_deliveries_leave_the_orderly_ledger(
        container, stack, tmp_path, capsys):
    """Every event 1-10 times, the copies concurrently, the events in shuffled order: the same
    ledger, decisions and refunds as one orderly delivery, and each overpayment refunded once."""
    now = int(time.time())
    stream = realistic_stream(48, now, tag="dup")
    orderly = orderly_outcome(container, stream, tmp_path)
    rng = random.Random(20261121)
    events = list(stream)
    rng.shuffle(events)
    copies = [d for d in events for _ in range(rng.randint(1, 10))]  # copies side by side
    s = stack(workers=1)
    sender = ProviderSender(s.base, s.settings, shared_signer(), on_send=s.fake.observe)
    started = time.monotonic()
    sender.deliver_all(copies, threads=16)
    s.wait_settled(len(stream), timeout=120)
    elapsed = time.monotonic() - started

    tally = sender.tally
    assert tally.acked == {d.key for d in stream} and not tally.gave_up
    assert set(tally.statuses) == {200}, tally.statuses
    assert _outcome(s.container) == orderly
    with s.container.sessions() as db:
        assert db.scalar(select(func.sum(InboxEvent.deliveries))) == len(copies)
        attempts = inbox_attempts(db)
        retried = _retried_errors(db)
    # Processed once: an event tried more than once had failed (rolled back) before, because
    # it arrived before the object it needs (an upcoming invoice before its subscription).
    assert set(retried) <= {"ObjectNotYetKnown"}, retried
    paid = refunds_paid(s.fake)
    assert set(paid) == overpaid_sales(stream) and set(paid.values()) == {1}
    assert_money_invariant(s.container, s.fake)
    _summary(capsys, "duplicates+shuffle", events=len(stream), deliveries=len(copies),
             duplicates=len(copies) - len(stream), retried=sum(retried.values()),
             refunds=sum(paid.values()),
             lost=len(stream) - sum(attempts.values()),
             double_refunds=sum(n - 1 for n in paid.values()), seconds=f"{elapsed:.1f}")


# -- ten thousand deliveries through kills and outages --------------------------------------------

RUN_CUSTOMERS = 920  # 10,005 events; with redeliveries, 10,500 deliveries
RUN_DELIVERIES = 10_500


def test_ten_thousand_deliveries_survive_worker_kills_a_redis_restart_and_a_database_outage(
        container, stack, tmp_path, capsys):
    """A provider-like sender delivers 10,005 events (10,500 deliveries) while workers are
    SIGKILLed at random points, Redis (the Redis inbox's record) is killed and restarted from
    its append-only file (503s while it is down), and the database is unreachable for a while
    (the drain waits it out): every acknowledged event is processed exactly once, the ledger is
    the orderly one, and no refund is paid twice."""
    now = int(time.time())
    stream = realistic_stream(RUN_CUSTOMERS, now, tag="run")
    rng = random.Random(10_000)
    deliveries = list(stream)
    for d in rng.sample(stream, RUN_DELIVERIES - len(stream)):  # redeliveries, some time later
        deliveries.insert(rng.randrange(deliveries.index(d) + 1, len(deliveries) + 1), d)
    orderly = orderly_outcome(container, stream, tmp_path)

    s = stack(workers=2)
    sender = ProviderSender(s.base, s.settings, shared_signer(), on_send=s.fake.observe)
    started = time.monotonic()
    faults = _FaultPlan(s, sender, rng, len(deliveries), len(stream))
    send = threading.Thread(target=sender.deliver_all, args=(deliveries, 8))
    send.start()
    faults.run_while(send.is_alive)
    send.join()
    sent_in = time.monotonic() - started
    faults.run_while(lambda: not faults.done)  # kills left for the drain after the last ack
    s.wait_settled(len(stream), timeout=240)
    elapsed = time.monotonic() - started

    tally = sender.tally
    assert all(w.poll() is None for w in s.workers), "a worker died on its own"
    assert not tally.gave_up and tally.acked == {d.key for d in stream}
    assert set(tally.statuses) <= {200, 503}, tally.statuses  # never a 500, never a 4xx
    assert tally.statuses[503] > 0, "the Redis outage should have been answered 503"
    assert _outcome(s.container) == orderly
    with s.container.sessions() as db:
        attempts = inbox_attempts(db)
        retried = _retried_errors(db)
        stored = db.scalar(select(func.sum(InboxEvent.deliveries)))
    assert sum(attempts.values()) == len(stream)  # one row per acknowledged event
    assert {status for status, _ in attempts} <= {InboxStatus.PROCESSED, InboxStatus.IGNORED}
    # An event retried had waited for the object it needs. A database error (the outage, a lock
    # or deadlock given up on) fails its batch and is waited out: it never costs an attempt.
    assert set(retried) <= {"ObjectNotYetKnown"}, retried
    assert stored >= tally.deliveries
    paid = refunds_paid(s.fake)
    assert set(paid) == overpaid_sales(stream) and set(paid.values()) == {1}
    assert_money_invariant(s.container, s.fake)
    _summary(capsys, "10k-run", events=len(stream), deliveries=len(deliveries),
             duplicates=len(deliveries) - len(stream), http_attempts=tally.attempts(),
             kills=s.kills, redis_restarts=s.redis.restarts, db_outages=s.db_outages,
             answers_503=tally.statuses[503], connection_errors=tally.connection_errors,
             retried=sum(retried.values()), refunds=sum(paid.values()),
             lost=len(stream) - sum(attempts.values()),
             double_refunds=sum(n - 1 for n in paid.values()),
             send_seconds=f"{sent_in:.0f}", seconds=f"{elapsed:.0f}",
             deliveries_per_second=f"{len(deliveries) / sent_in:.0f}")


def _created_day(d: Delivery) -> date:
    if d.provider == "stripe":
        return datetime.fromtimestamp(int(d.event["created"]), UTC).date()
    return datetime.fromisoformat(d.event["create_time"].replace("Z", "+00:00")).date()


def test_events_lost_with_redis_disk_are_stored_again_by_backfill(container, stack, tmp_path,
                                                                  capsys):
    """With the Redis inbox, an acknowledged event is on Redis's disk until a drain commits it.
    If that disk is lost (killed, its append-only file gone, restarted empty), the providers'
    event listings still hold the events: `gateway backfill` stores every one the inbox lacks,
    and the ledger ends as the orderly one, with no refund paid twice."""
    stream = realistic_stream(24, int(time.time()), tag="lost")
    orderly = orderly_outcome(container, stream, tmp_path)
    s = stack(workers=0)  # nothing drains: every event is only in Redis when its disk goes
    owner = {str(d.event["id"]): s.settings.merchants[d.merchant] for d in stream}

    def sent(event: dict[str, Any]) -> None:  # listed on the sending merchant's account only
        merchant = owner[str(event["id"])]
        s.fake.observe(event, merchant.stripe.api_key if event.get("object") == "event"
                       else merchant.paypal.client_id)

    sender = ProviderSender(s.base, s.settings, shared_signer(), on_send=sent)
    sender.deliver_all(stream, threads=4)
    assert sender.tally.acked == {d.key for d in stream} and not sender.tally.gave_up
    s.redis.stop()
    s.redis.lose_disk()
    s.redis.start()
    s.redis.restarts += 1
    assert s.counts() == {}, "nothing had reached the inbox table"

    first = min(_created_day(d) for d in stream)
    last = max(_created_day(d) for d in stream) + timedelta(days=1)
    stored = 0
    for merchant, provider in sorted({(d.merchant, d.provider) for d in stream}):
        done = s.gateway("backfill", "--merchant", merchant, "--provider", provider,
                         "--from", first.isoformat(), "--to", last.isoformat())
        assert done.returncode == 0, done.stderr
        found = re.search(r"stored and enqueued (\d+)", done.stdout)
        assert found is not None, done.stdout
        stored += int(found.group(1))
    assert stored == len(stream)
    s.start_worker()
    s.wait_settled(len(stream), timeout=120)
    assert _outcome(s.container) == orderly
    paid = refunds_paid(s.fake)
    assert set(paid) == overpaid_sales(stream) and set(paid.values()) == {1}
    assert_money_invariant(s.container, s.fake)
    _summary(capsys, "redis-disk-lost", events=len(stream), acknowledged=len(sender.tally.acked),
             backfilled=stored, lost=0, refunds=sum(paid.values()), double_refunds=0)


class _FaultPlan:
    """Faults at seeded random points of the run, one at a time: four worker kills (by events
    processed) and, on their own timeline, a Redis kill and restart and then a database outage
    (by deliveries acknowledged, so both land while the sender is busy)."""

    def __init__(self, s: Stack, sender: ProviderSender, rng: random.Random, deliveries: int,
                 events: int) -> None:
        self.s, self.sender, self.rng = s, sender, rng
        self.kills = sorted(int(events * rng.uniform(0.05, 0.95)) for _ in range(4))
        self.outages = [(int(deliveries * rng.uniform(0.25, 0.4)), "redis"),
                        (int(deliveries * rng.uniform(0.55, 0.7)), "database")]

    @property
    def done(self) -> bool:
        return not self.kills and not self.outages

    def _processed(self) -> int:
        return sum(n for status, n in self.s.counts().items() if status in _DONE)

    def run_while(self, going: Callable[[], bool]) -> None:
        while not self.done and going():
            if self.outages and self.sender.tally.deliveries >= self.outages[0][0]:
                self._inflict(self.outages.pop(0)[1])
            if self.kills and self._processed() >= self.kills[0]:
                self.kills.pop(0)
                self._inflict("kill")
            time.sleep(0.05)

    def _inflict(self, kind: str) -> None:
        if kind == "kill":
            self.s.kill_worker(self.rng)
        elif kind == "redis":
            self.s.redis.restart(down_for=3)
        else:
            with self.s.database_down():
                time.sleep(5)  # longer than the busy timeout (2 s): writes fail, 503


# -- retries, dead letters and the sweeper, exercised ---------------------------------------------


def _stale_merchants(s: Stack, tmp_path: Path, missing: str) -> Path:
    """The merchants file of a worker deployed before ``missing`` was added."""
    text = Path(s.env["GATEWAY_MERCHANTS_FILE"]).read_text()
    stale = re.sub(rf"^\[merchants\.{missing}(\.[a-z]+)?\]$.*?(?=^\[merchants\.(?!{missing}))",
                   "", text, flags=re.M | re.S)
    assert f"merchants.{missing}" not in stale
    path = tmp_path / "merchants-stale.toml"
    path.write_text(stale)
    return path


def _inbox_row(s: Stack, event_id: str) -> InboxEvent:
    with s.container.sessions() as db:
        return db.scalars(select(InboxEvent).where(InboxEvent.event_id == event_id)).one()


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_retries_dead_letters_replay_and_the_sweeper_in_the_running_processes(stack, tmp_path,
                                                                             capsys):
    """A refund the provider fails twice is retried with backoff and paid once; an event that
    fails every time goes dead with its traceback, and `gateway replay --failed` processes it
    once the cause is fixed; events acknowledged while Redis is down are swept in."""
    from sandbox import samples
    from tests.support.stream import overpayment_life

    s = stack(workers=0, GATEWAY_MAX_ATTEMPTS="4")
    # The worker was deployed before digitalcare was onboarded; the web tier knows it.
    s.start_worker(GATEWAY_MERCHANTS_FILE=str(_stale_merchants(s, tmp_path, "digitalcare")))
    s.fake.refunds_down = True
    now = int(time.time())
    overpaid = overpayment_life("retry", now)
    cancelled = samples.stripe_event("customer.subscription.deleted",
                                     samples.Scenario(key="dead"), cycle=2)
    unknown = [Delivery("stripe", "digitalcare", e)
               for e in samples.stripe_lifecycle(samples.Scenario(key="dead"))]
    sender = ProviderSender(s.base, s.settings, shared_signer(), on_send=s.fake.observe)
    sender.deliver_all(overpaid + unknown, threads=1)  # in order

    # 1. Retries: the refund fails at the provider (500), is retried under the same key.
    def failed_twice() -> bool:
        with s.container.sessions() as db:
            action = db.scalars(select(Action).where(Action.kind == "refund")).first()
            return (action is not None and action.attempts >= 2
                    and action.status == ActionStatus.PENDING)  # the second failure recorded
    _until(failed_twice, 60, "two failed refund attempts")
    s.fake.refunds_down = False

    # 2. Dead letter: the cancellation cannot be decided by that worker, four times.
    _until(lambda: _inbox_row(s, cancelled["id"]).status == InboxStatus.DEAD, 60, "a dead event")
    dead = _inbox_row(s, cancelled["id"])
    assert dead.attempts == 4 and "UnknownMerchant" in (dead.last_traceback or "")
    listing = s.gateway("inbox", "--status", "dead")
    assert listing.returncode == 0 and cancelled["id"] in listing.stdout, listing.stderr
    s.restart_workers()  # the fix: the worker redeployed with the current merchants file
    replayed = s.gateway("replay", "--failed")
    assert replayed.returncode == 0 and "re-enqueued 1 event" in replayed.stdout, replayed.stderr
    s.wait_settled(len(overpaid) + len(unknown), timeout=60)
    assert _inbox_row(s, cancelled["id"]).status == InboxStatus.PROCESSED

    with s.container.sessions() as db:
        (action,) = db.scalars(select(Action).where(Action.kind == "refund")).all()
        kinds = Counter(d[1] for d in decisions(db).elements())
    assert action.status == ActionStatus.SUCCEEDED and action.attempts >= 3
    assert s.fake.posts_with_key(action.id) >= 3  # every attempt under the one key
    assert refunds_paid(s.fake) == {action.payment_ref: 1}
    assert_money_invariant(s.container, s.fake)
    assert kinds["cancellation"] == 2  # the replayed one is decided too

    # 3. Redis down: with the Redis inbox, Redis is where a delivery is recorded, so while it
    # is down every delivery answers 503 and the provider retries; once it is back they are
    # acknowledged, then drained.
    refused_before = sender.tally.statuses[503]
    s.redis.stop()
    stranded = [Delivery("stripe", "oneclick", e)
                for e in samples.stripe_lifecycle(samples.Scenario(key="stranded"))]
    back = threading.Timer(3.0, s.redis.start)
    back.start()
    sender.deliver_all(stranded, threads=4)
    back.join()
    s.redis.restarts += 1
    assert sender.tally.statuses[503] > refused_before, "Redis down should have answered 503"
    assert set(sender.tally.statuses) <= {200, 503}, sender.tally.statuses
    assert not sender.tally.gave_up
    s.wait_settled(len(overpaid) + len(unknown) + len(stranded), timeout=60)
    _summary(capsys, "retries+dead-letters+sweeper", events=sender.tally.deliveries,
             refund_attempts=action.attempts, refunds=1, dead=1, replayed=1,
             retried_after_redis=len(stranded), redis_restarts=s.redis.restarts, lost=0,
             double_refunds=0)
