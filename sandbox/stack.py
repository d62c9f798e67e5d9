"""The local stack the demo and the sandbox run: a fresh data directory, the environment that
points the seed merchants at the local fake providers, and web (gunicorn, as the Procfile runs
it), worker and clock processes on the embedded Redis and a SQLite ledger."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from ledger.inbox import counts_by_status
from ledger.models import InboxStatus
from sandbox import fake_providers
from service.bootstrap import Container
from service.config import DEFAULT_MERCHANTS_FILE
from service.embedded_redis import stop_embedded_redis
from service.errors import ConfigError
from service.web import GUNICORN_ARGS

PROCESSES = ("web", "worker", "clock")


_MARK = ".gateway-local-stack"  # written in every data directory made here


def fresh_data_dir(data_dir: Path) -> None:
    """An empty ``data_dir``: what an earlier run left (its Redis included) is removed. Only a
    directory this module made (or an earlier demo's, holding gateway.db) is ever removed: any
    other that is not empty is refused with a ConfigError."""
    if data_dir.exists():
        if any(data_dir.iterdir()) and not any(
                (data_dir / name).exists() for name in (_MARK, "gateway.db")):
            raise ConfigError(f"{data_dir} is not empty and was not made by the demo or the "
                              f"sandbox: choose another --data-dir")
        stop_embedded_redis(data_dir)
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    (data_dir / _MARK).write_text("made by the gateway's demo or sandbox; emptied by the next\n")


def stack_env(data_dir: Path, providers_url: str) -> dict[str, str]:
    """The processes' environment: this data directory (SQLite, embedded Redis), the seed
    merchants with their APIs at ``providers_url`` (a merchants file written under the data
    directory), and a development CA trusted for PayPal signatures."""
    from sandbox.devcerts import load_or_create_dev_signer

    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    load_or_create_dev_signer(data_dir)  # a local CA the gateway trusts for PayPal
    merchants = data_dir / "merchants.toml"
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
def processes(env: dict[str, str], port: int, quiet: bool = False
              ) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Web, worker and clock, each logging to ``<data dir>/logs/<name>.log``, by name; each is
    asked to stop (SIGTERM) on the way out, and killed if it has not within 15 seconds."""
    python = sys.executable
    commands = {
        "web": [python, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *GUNICORN_ARGS],
        "worker": [python, "-m", "cli.main", "worker"],
        "clock": [python, "-m", "cli.main", "clock", "--interval", "2"],
    }
    logs = Path(env["GATEWAY_DATA_DIR"]) / "logs"
    logs.mkdir(exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, cmd in commands.items():
            out = open(logs / f"{name}.log", "wb")  # noqa: SIM115 (the process's, while it runs)
            procs[name] = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
            if not quiet:
                print(f"started {name} (pid {procs[name].pid}), log in {logs / (name + '.log')}")
        yield procs
    finally:
        stop_processes(list(procs.values()))


def stop_processes(procs: list[subprocess.Popen[bytes]], grace: float = 15.0) -> None:
    """SIGTERM each, then wait for each (SIGKILL after ``grace`` seconds); then the processes
    they started (gunicorn's workers), which a master that was killed, or a worker stuck on its
    way out, could leave running: SIGKILL for any still there a few seconds later."""
    started = {pid for proc in procs for pid in _descendants(proc.pid)} | _our_group()
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    deadline = time.monotonic() + 5
    while (left := [pid for pid in started if _running(pid)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _our_group() -> set[int]:
    """When this process leads its process group (a terminal's job, or a session of its own),
    the members that are not its own children (those it stops itself): the processes of the
    processes it started, including a gunicorn worker whose master has already gone (an orphan
    keeps its group). Otherwise none: the group is someone else's."""
    group = os.getpgrp()
    if group != os.getpid():
        return set()
    members = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        pid, parent = int(stat.parent.name), int(fields[1])
        if int(fields[2]) == group and pid != group and parent != group:
            members.add(pid)
    return members


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (Linux: /proc; elsewhere, none known)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for its parent."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


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


def wait_processed(container: Container, timeout: float) -> None:
    """Until no event waits in the Redis inbox's streams and none in the inbox table is pending
    or waiting for a retry; SystemExit after ``timeout``."""
    deadline = time.monotonic() + timeout
    waiting = {InboxStatus.PENDING, InboxStatus.RETRY}
    partitions = range(container.settings.partitions)
    while time.monotonic() < deadline:
        streamed = any(container.intake.waiting(p) for p in partitions)
        counts = counts_by_status(container.engine)
        if not streamed and not any(counts.get(s, 0) for s in waiting):
            return
        time.sleep(0.3)
    raise SystemExit(f"events still waiting after {timeout:.0f}s: {counts}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
