"""`gateway demo`: the whole pipeline on the embedded defaults, end to end, in one command.

Starts gunicorn (as the Procfile does), a worker and the clock on an embedded Redis and a SQLite
ledger under a fresh data directory, with the providers' APIs answered by a local fake; sends
signed Stripe and PayPal life cycles for every merchant (with a duplicate delivery); waits until
the workers have processed them; prints what the ledger holds; then, for every merchant, files
support requests that end in a refund, an account credit, a denial and a review, and prints
each Decision with its reasons and what was carried out; stops everything.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select

from ledger.inbox import counts_by_status
from ledger.migrate import upgrade
from ledger.models import Customer, InboxEvent, InboxStatus, Invoice, Payment, Refund, Subscription
from policy.money import Money
from sandbox import fake_providers
from sandbox.demo_flows import ended_in, report, run_flows
from sandbox.simulate import lifecycle_events, send_event
from service.bootstrap import Container
from service.config import DEFAULT_MERCHANTS_FILE, Settings, load_settings
from service.embedded_redis import ensure_embedded_redis, stop_embedded_redis
from service.web import GUNICORN_ARGS


def run_demo(data_dir: Path, timeout: float = 90.0) -> int:
    data_dir = data_dir.resolve()
    _fresh(data_dir)
    fake, server = fake_providers.start()  # Stripe's and PayPal's APIs, answered locally
    env = _demo_env(data_dir, f"http://127.0.0.1:{server.server_address[1]}")
    settings = load_settings(env)
    upgrade(settings.database_url)
    ensure_embedded_redis(data_dir)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with _processes(env, port):
            if not wait_ready(base, timeout):
                raise SystemExit("the web server did not become ready; see the logs under the "
                                 "data dir")
            sent = _send_all(settings, base, data_dir, fake)
            print(f"\nsent {sent} signed deliveries; waiting for the worker ...")
            container = Container(settings)
            _wait_processed(container, timeout)
            _print_ledger(container)
            print("\nfiling support requests through the admin API ...")
            results = run_flows(base, settings, timeout=timeout, on_send=fake.observe)
            print(report(results))
            print(f"\nrequests that reached the fake Stripe/PayPal APIs: {len(fake.requests)}")
            container.close()
    finally:
        stop_embedded_redis(data_dir)
        server.shutdown()
        server.server_close()
    wrong = [r for r in results if r.outcome != r.flow.expect or ended_in(r) != r.flow.label]
    for r in wrong:
        print(f"UNEXPECTED: {r.flow.merchant} {r.flow.label} ended in {ended_in(r)} "
              f"({r.outcome}, expected {r.flow.expect})")
    return 1 if wrong else 0


def _fresh(data_dir: Path) -> None:
    if data_dir.exists():
        stop_embedded_redis(data_dir)
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)


def _demo_env(data_dir: Path, providers_url: str) -> dict[str, str]:
    from sandbox.devcerts import load_or_create_dev_signer

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    load_or_create_dev_signer(data_dir)  # a local CA the demo's gateway trusts for PayPal
    merchants = data_dir / "merchants.toml"  # the sandbox merchants, pointed at the fake APIs
    merchants.write_text(fake_providers.merchants_file_for(
        providers_url, DEFAULT_MERCHANTS_FILE.read_text()))
    env["GATEWAY_MERCHANTS_FILE"] = str(merchants)
    env["GATEWAY_DATA_DIR"] = str(data_dir)
    env["GATEWAY_PAYPAL_CA_FILE"] = str(data_dir / "devcerts" / "ca.pem")
    env.setdefault("LOG_LEVEL", "WARNING")
    # web, worker and clock on one host: /metrics adds up all three (see service.metrics)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(data_dir / "metrics")
    (data_dir / "metrics").mkdir(exist_ok=True)
    return env


@contextmanager
def _processes(env: dict[str, str], port: int) -> Iterator[None]:
    python = sys.executable
    commands = [
        [python, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *GUNICORN_ARGS],
        [python, "-m", "cli.main", "worker"],
        [python, "-m", "cli.main", "clock", "--interval", "2"],
    ]
    logs = Path(env["GATEWAY_DATA_DIR"]) / "logs"
    logs.mkdir(exist_ok=True)
    procs = []
    try:
        for name, cmd in zip(("web", "worker", "clock"), commands, strict=True):
            out = open(logs / f"{name}.log", "wb")  # noqa: SIM115 (the process's, while it runs)
            procs.append(subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT))
            print(f"started {name} (pid {procs[-1].pid}), log in {logs / (name + '.log')}")
        yield
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _send_all(settings: Settings, base: str, data_dir: Path,
              fake: fake_providers.FakeProviders) -> int:
    sent = 0
    for name in settings.merchants:
        for provider in ("stripe", "paypal"):
            events = lifecycle_events(provider, key=f"demo-{name}")
            for event in events + events[:1]:  # the first one twice: a duplicate delivery
                fake.observe(event)  # the fake provider captured the payments it reports
                result = send_event(settings, data_dir, provider, name, event, base)
                sent += 1
                dup = " (duplicate)" if isinstance(result.body, dict) and result.body.get(
                    "duplicate") else ""
                print(f"  {name:12} {provider:6} {_event_type(provider, event):38} "
                      f"-> {result.status}{dup}")
                if result.status != 200:
                    raise SystemExit(f"the gateway refused a signed event: {result.body}")
    return sent


def _event_type(provider: str, event: dict[str, Any]) -> str:
    return str(event["type"] if provider == "stripe" else event["event_type"])


def wait_ready(base: str, timeout: float) -> bool:
    """Whether the gateway at ``base`` answered /readyz with 200 within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                return True
        except requests.RequestException:  # not listening yet, or booting
            pass
        time.sleep(0.2)
    return False


def _wait_processed(container: Container, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = {InboxStatus.PENDING, InboxStatus.RETRY}
    while time.monotonic() < deadline:
        counts = counts_by_status(container.engine)
        if not any(counts.get(s, 0) for s in waiting):
            return
        time.sleep(0.3)
    raise SystemExit(f"events still waiting after {timeout:.0f}s: {counts}")


def _print_ledger(container: Container) -> None:
    print("\ninbox:", counts_by_status(container.engine))
    with container.sessions() as s:
        duplicates = s.scalar(select(func.sum(InboxEvent.deliveries - 1)))
        print(f"duplicate deliveries absorbed: {duplicates}")
        for merchant in container.settings.merchants:
            print(f"\n== {merchant}")
            for c in s.scalars(select(Customer).filter_by(merchant=merchant)):
                print(f"  customer     {c.provider:6} {c.provider_id:28} {c.email or ''}")
            for sub in s.scalars(select(Subscription).filter_by(merchant=merchant)):
                price = _money(sub.amount, sub.currency)
                print(f"  subscription {sub.provider:6} {sub.provider_id:28} {sub.status:10} "
                      f"{price}")
            for inv in s.scalars(select(Invoice).filter_by(merchant=merchant)):
                print(f"  invoice      {inv.provider:6} {inv.provider_id:28} {inv.status:10} "
                      f"paid {_money(inv.amount_paid, inv.currency)}")
            for p in s.scalars(select(Payment).filter_by(merchant=merchant)):
                print(f"  payment      {p.provider:6} {p.provider_id:28} {p.status:10} "
                      f"{_money(p.amount, p.currency)} via {p.payment_method}")
            for r in s.scalars(select(Refund).filter_by(merchant=merchant)):
                print(f"  refund       {r.provider:6} {r.provider_id:28} {r.status:10} "
                      f"{_money(r.amount, r.currency)} of {r.payment_ref}")


def _money(amount: int | None, currency: str | None) -> str:
    return str(Money(amount, currency)) if amount is not None and currency else "-"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
