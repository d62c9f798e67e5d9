"""Real processes: a worker or gunicorn started as in production, against the test stores."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox import demo, fake_providers
from service.bootstrap import Container
from service.config import DEFAULT_MERCHANTS_FILE, Settings, load_merchants
from tests.support.outages import free_port

ROOT = Path(__file__).resolve().parents[2]


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "GATEWAY_DATA_DIR": str(settings.data_dir),
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url or "",
        "GATEWAY_PAYPAL_CA_FILE": str(settings.paypal_ca_file),
        "LOG_LEVEL": "WARNING",
        # the processes of one test add their metrics up here, as on one host in production
        "PROMETHEUS_MULTIPROC_DIR": str(_metrics_dir(settings)),
        **extra,
    })
    return env


def _metrics_dir(settings: Settings) -> Path:
    path = settings.data_dir / "metrics"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Any]:
    """Start a process with its output in a log file; every one is killed after the test."""
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []

    def start(args: list[str], env: dict[str, str], name: str, shell: bool = False
              ) -> subprocess.Popen[bytes]:
        log = open(tmp_path / f"{name}-{len(procs)}.log", "wb")  # noqa: SIM115 (closed at teardown)
        logs.append(log)
        cmd: Any = args[0] if shell else args
        procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log,
                                      stderr=subprocess.STDOUT, shell=shell,
                                      start_new_session=True))
        return procs[-1]

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    for log in logs:
        log.close()


def procfile_line(name: str) -> str:
    """The command of the Procfile's ``name:`` line, to start a process exactly as deployed."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} line in the Procfile")


def wait_ready(base: str) -> None:
    """Until the gateway at ``base`` answers /readyz with 200 (at most 30 s)."""
    assert demo.wait_ready(base, 30), "gunicorn did not become ready"


def worker_command() -> list[str]:
    return [sys.executable, "-m", "cli.main", "worker"]


@pytest.fixture
def gateway(container: Container, spawn, tmp_path: Path):
    """The gateway as the Procfile runs it, with one queue worker, pointed at the fake
    providers: (base URL, settings, fake)."""
    yield from _gateway(container, spawn, tmp_path, workers=1)


@pytest.fixture
def impatient_gateway(container: Container, spawn, tmp_path: Path):
    """The same, where an event that fails once is dead-lettered at once (the console's
    replay is tested on it)."""
    yield from _gateway(container, spawn, tmp_path, workers=1, GATEWAY_MAX_ATTEMPTS="1")


@pytest.fixture
def busy_gateway(container: Container, spawn, tmp_path: Path):
    """The same with two queue workers, so that decisions and actions run side by side."""
    yield from _gateway(container, spawn, tmp_path, workers=2)


def _gateway(container: Container, spawn, tmp_path: Path, workers: int, **extra_env: str):
    fake, server = fake_providers.start()
    merchants = tmp_path / "merchants.toml"
    merchants.write_text(fake_providers.merchants_file_for(
        f"http://127.0.0.1:{server.server_address[1]}", DEFAULT_MERCHANTS_FILE.read_text()))
    port = free_port()
    env = process_env(container.settings, PORT=str(port), GATEWAY_MERCHANTS_FILE=str(merchants),
                      **extra_env)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    spawn([procfile_line("web")], env, "web", shell=True)
    for _ in range(workers):
        spawn(worker_command(), env, "worker")
    spawn([sys.executable, "-m", "cli.main", "clock", "--interval", "1"], env, "clock")
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    settings = dataclasses.replace(container.settings, merchants=load_merchants(merchants, {}))
    yield base, settings, fake
    server.shutdown()
    server.server_close()
