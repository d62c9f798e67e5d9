"""Real processes: a worker or gunicorn started as in production, against the test stores."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service import demo
from service.config import Settings

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
        log = open(tmp_path / f"{name}-{len(procs)}.log", "wb")
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
    return [sys.executable, "-m", "service.cli", "worker"]
