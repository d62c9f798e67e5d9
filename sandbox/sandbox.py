"""`gateway sandbox` and `gateway fakes`: the gateway running on this machine until Ctrl-C.

The sandbox starts the local fake Stripe and PayPal APIs, web (gunicorn, as the Procfile runs
it), a worker and the clock on an embedded Redis and a SQLite ledger in a fresh data directory,
with a merchants file there that points every seed merchant at the fakes. It seeds customers
whose payments were made a few days ago (signed webhooks through the real path), leaves one
refund request waiting in review, and prints the addresses, the admin tokens and ready `curl`
lines with the real ids. Ctrl-C (SIGINT) or SIGTERM stops everything it started, the embedded
Redis included. `gateway fakes` runs the fake APIs alone, for a gateway started by hand.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import FrameType

from ledger.migrate import upgrade
from sandbox import fake_providers, seed
from sandbox.stack import (
    fresh_data_dir,
    port_is_free,
    processes,
    stack_env,
    wait_processed,
    wait_ready,
)
from service.bootstrap import Container
from service.config import DEFAULT_MERCHANTS_FILE, Settings, load_settings
from service.embedded_redis import ensure_embedded_redis, socket_path, stop_embedded_redis
from service.errors import ConfigError

WEB_PORT = 8000
FAKES_PORT = 8010
_TRY_MERCHANT = "theopenhost"  # the merchant the printed curl lines use


class Stopped(Exception):
    """SIGINT or SIGTERM: stop what was started and exit."""


@dataclass(frozen=True)
class Sandbox:
    """What is running, as printed: the addresses and the merchants' settings."""

    base: str
    fakes: str
    data_dir: Path
    settings: Settings
    pids: dict[str, int]


def run_sandbox(data_dir: Path, port: int = WEB_PORT, fakes_port: int = FAKES_PORT,
                timeout: float = 60.0) -> int:
    """Run the sandbox until SIGINT or SIGTERM; 0 when stopped so, 1 if a process died."""
    for name, wanted in (("--port", port), ("--fakes-port", fakes_port)):
        if not port_is_free(wanted):
            raise ConfigError(f"port {wanted} is in use on 127.0.0.1: pass another {name}")
    data_dir = data_dir.resolve()
    try:
        with _stop_on_signals("stopping web, worker, clock, the fake providers and Redis"):
            try:
                fresh_data_dir(data_dir)
            except OSError as exc:
                raise ConfigError(f"cannot empty the data directory {data_dir}: {exc}") from exc
            with _fakes(fakes_port) as (fake, fakes_url):
                env = stack_env(data_dir, fakes_url)
                settings = load_settings(env)
                upgrade(settings.database_url)
                ensure_embedded_redis(data_dir)
                return _run(env, settings, fake, fakes_url, port, timeout)
    except Stopped:
        print("stopped", flush=True)
        return 0


def _run(env: dict[str, str], settings: Settings, fake: fake_providers.FakeProviders,
         fakes_url: str, port: int, timeout: float) -> int:
    base = f"http://127.0.0.1:{port}"
    data_dir = settings.data_dir
    try:
        with processes(env, port, quiet=True) as procs:
            if not wait_ready(base, timeout):
                raise ConfigError(f"the web server did not become ready; see {data_dir / 'logs'}")
            seed.send_seeds(settings, data_dir, base, fake)
            container = Container(settings)
            try:
                wait_processed(container, timeout)
                paid = seed.payments(container.sessions)
            finally:
                container.close()
            review = _review(base, settings, paid, timeout)
            running = Sandbox(base, fakes_url, data_dir, settings,
                              {name: p.pid for name, p in procs.items()})
            print(describe(running, paid, review), flush=True)
            return _watch(procs)
    finally:
        stop_embedded_redis(data_dir)


def _review(base: str, settings: Settings, paid: list[seed.Paid], timeout: float
            ) -> tuple[seed.Paid, dict[str, object]] | None:
    """The theopenhost Stripe payment after the first, filed so that it waits in review."""
    candidates = [p for p in paid if p.merchant == _TRY_MERCHANT and p.provider == "stripe"]
    if len(candidates) < 2:
        return None
    token = settings.merchants[_TRY_MERCHANT].admin_token
    return candidates[1], seed.file_review(base, token, candidates[1], timeout)


def _watch(procs: dict[str, subprocess.Popen[bytes]]) -> int:
    """Until a signal (Stopped) or until a process exits on its own (status 1)."""
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"gateway sandbox: {name} exited with status {proc.returncode}; see "
                      f"its log; stopping the rest", file=sys.stderr)
                return 1
        time.sleep(0.5)


@contextmanager
def _stop_on_signals(saying: str) -> Iterator[None]:
    """SIGINT and SIGTERM raise Stopped, once: from then on both are ignored, so that a second
    Ctrl-C does not cut the stopping short."""
    def stop(signum: int, frame: FrameType | None) -> None:
        for each in (signal.SIGINT, signal.SIGTERM):
            signal.signal(each, signal.SIG_IGN)
        print(f"\n{saying} ...", flush=True)
        raise Stopped

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _fakes(port: int, lenient: bool = True
           ) -> Iterator[tuple[fake_providers.FakeProviders, str]]:
    """The fake Stripe and PayPal APIs on ``port``. Lenient: a payment sent by hand with
    `gateway simulate` is refundable too, though the fake never saw it."""
    fake, server = fake_providers.start(lenient=lenient, port=port)
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        _shut(server)


def _shut(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()


# ------------------------------------------------------------------------------- what it prints


def describe(running: Sandbox, paid: list[seed.Paid],
             review: tuple[seed.Paid, dict[str, object]] | None) -> str:
    """The sandbox's front page: what runs where, the tokens, the customers, and curl lines."""
    s = running.settings
    lines = [
        "",
        "gateway sandbox is running; Ctrl-C stops everything it started.",
        "",
        f"  gateway (web)          {running.base}   (pid {running.pids['web']})",
        f"  console                {running.base}/console   (your name and an admin token "
        f"below)",
        f"  worker, clock          pids {running.pids['worker']}, {running.pids['clock']}",
        f"  fake Stripe + PayPal   {running.fakes}",
        f"  Redis (embedded)       unix://{socket_path(running.data_dir)}",
        f"  data directory         {running.data_dir}  (logs/, merchants.toml, gateway.db)",
        "",
        "merchants and their admin tokens (Authorization: Bearer <token>):",
    ]
    lines += [f"  {name:12} {m.admin_token}" for name, m in s.merchants.items()]
    lines += ["", "customers who paid (signed webhooks, dated a few days ago):"]
    lines += [f"  {p.merchant:12} {p.provider:6} {p.name:18} account {p.account:22} "
              f"payment {p.payment:28} {p.amount} on {p.paid_at:%Y-%m-%d}" for p in paid]
    lines += ["", *try_lines(running, paid, review)]
    return "\n".join(lines)


def try_lines(running: Sandbox, paid: list[seed.Paid],
              review: tuple[seed.Paid, dict[str, object]] | None) -> list[str]:
    """Ready commands against the running sandbox, with its real ids."""
    first = next((p for p in paid if p.merchant == _TRY_MERCHANT and p.provider == "stripe"),
                 None)
    if first is None:
        return []
    token = running.settings.merchants[_TRY_MERCHANT].admin_token
    base, auth = running.base, f"Authorization: Bearer {token}"
    today = datetime.now(UTC).date()
    start, end = (today - timedelta(days=30)).isoformat(), (today + timedelta(days=1)).isoformat()
    lines = [
        "try it (TheOpenHost refunds within 16 days):",
        "  # file a refund request; a worker decides it and refunds at the fake Stripe",
        _curl(f"{base}/v1/refund-requests", auth, {
            "account": first.account, "payment": first.payment,
            "reason": "it does not work for me"}, key="try-refund-1"),
        "  # its decision, with the cited clauses, and the refund (use the id it answered)",
        _curl(f"{base}/v1/refund-requests/<id>", auth),
        "  # decisions waiting for a person",
        _curl(f"{base}/v1/reviews", auth),
    ]
    if review is not None:
        waiting, decision = review
        lines += [
            f"  # approve the one waiting ({waiting.name}'s {waiting.payment}): refund it whole",
            _curl(f"{base}/v1/reviews/{decision['id']}", auth, {
                "approve": True, "reviewer": "you@example.com",
                "refund": {"amount": waiting.amount.amount,
                           "currency": waiting.amount.currency},
                "note": "approved in the sandbox"}, key="try-approve-1"),
        ]
    env = (f"GATEWAY_DATA_DIR={shlex.quote(str(running.data_dir))} GATEWAY_MERCHANTS_FILE="
           f"{shlex.quote(str(running.data_dir / 'merchants.toml'))}")
    lines += [
        "  # reconcile the ledger with the fake providers' books (exit 0: nothing to report)",
        f"  {env} \\\n    gateway report reconcile --merchant {_TRY_MERCHANT} --from {start} "
        f"--to {end} --format csv",
        "  # events the providers sent that never reached the gateway (none: all arrived)",
        f"  {env} \\\n    gateway backfill --merchant {_TRY_MERCHANT} --provider stripe "
        f"--from {start} --to {end} --list",
    ]
    return lines


def _curl(url: str, auth: str, body: dict[str, object] | None = None, key: str | None = None
          ) -> str:
    parts = ["curl", "-s", url, "-H", auth]
    if body is not None:
        parts += ["-H", f"Idempotency-Key: {key}", "-H", "Content-Type: application/json",
                  "-d", json.dumps(body)]
    return "  " + " ".join(shlex.quote(p) for p in parts)


# ------------------------------------------------------------------------------- gateway fakes


def run_fakes(port: int = FAKES_PORT, merchants_out: Path | None = None) -> int:
    """Serve the fake Stripe and PayPal APIs on ``port`` until SIGINT or SIGTERM."""
    if not port_is_free(port):
        raise ConfigError(f"port {port} is in use on 127.0.0.1: pass another --port")
    try:
        with _stop_on_signals("stopping the fake providers"), _fakes(port) as (_fake, url):
            print(f"fake Stripe and PayPal APIs at {url}; Ctrl-C stops them", flush=True)
            if merchants_out is not None:
                merchants_out.write_text(fake_providers.merchants_file_for(
                    url, DEFAULT_MERCHANTS_FILE.read_text()))
                print(f"wrote {merchants_out}: the seed merchants pointed at them "
                      f"(GATEWAY_MERCHANTS_FILE={merchants_out})", flush=True)
            while True:
                time.sleep(1)
    except Stopped:
        return 0
