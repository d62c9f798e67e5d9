"""`gateway demo`: the whole pipeline on the embedded defaults, end to end, in one command.

Starts gunicorn (as the Procfile does), a worker and the clock on an embedded Redis and a SQLite
ledger under a fresh data directory, with the providers' APIs answered by a local fake; sends
signed Stripe and PayPal life cycles for every merchant (with a duplicate delivery); waits until
the workers have processed them; prints what the ledger holds; then, for every merchant, files
support requests that end in a refund, an account credit, a denial and a review, and prints
each Decision with its reasons and what was carried out; stops everything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from ledger.inbox import counts_by_status
from ledger.migrate import upgrade
from ledger.models import Customer, InboxEvent, Invoice, Payment, Refund, Subscription
from policy.money import Money
from sandbox import fake_providers
from sandbox.demo_flows import ended_in, report, run_flows
from sandbox.simulate import lifecycle_events, send_event
from sandbox.stack import (
    free_port,
    fresh_data_dir,
    processes,
    stack_env,
    wait_processed,
    wait_ready,
)
from service.bootstrap import Container
from service.config import Settings, load_settings
from service.embedded_redis import ensure_embedded_redis, stop_embedded_redis

__all__ = ["run_demo", "wait_ready"]


def run_demo(data_dir: Path, timeout: float = 90.0) -> int:
    data_dir = data_dir.resolve()
    fresh_data_dir(data_dir)
    fake, server = fake_providers.start()  # Stripe's and PayPal's APIs, answered locally
    env = stack_env(data_dir, f"http://127.0.0.1:{server.server_address[1]}")
    settings = load_settings(env)
    upgrade(settings.database_url)
    ensure_embedded_redis(data_dir)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    try:
        with processes(env, port):
            if not wait_ready(base, timeout):
                raise SystemExit("the web server did not become ready; see the logs under the "
                                 "data dir")
            sent = _send_all(settings, base, data_dir, fake)
            print(f"\nsent {sent} signed deliveries; waiting for the worker ...")
            container = Container(settings)
            wait_processed(container, timeout)
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
