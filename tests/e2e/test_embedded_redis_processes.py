"""`gateway serve`, `worker` and `clock` on the embedded Redis, started by hand as the README
says: the server runs while any of them does and stops when the last one exits (SIGTERM, as a
supervisor stops them). `gateway serve` finds its gunicorn without .venv/bin on PATH."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import requests

from ledger.migrate import upgrade
from service.embedded_redis import stop_embedded_redis
from tests.e2e.test_sandbox import ROOT, _alive, _env, _until
from tests.support.outages import free_port


def test_the_embedded_redis_stops_when_the_last_of_serve_worker_and_clock_exits(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    upgrade(f"sqlite:///{data_dir / 'gateway.db'}")
    port = free_port()
    env = _env(tmp_path) | {"GATEWAY_DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING"}
    venv_bin = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p != venv_bin)
    gateway = [sys.executable, "-m", "cli.main"]
    logs = {name: open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (closed below)
            for name in ("serve", "worker", "clock")}
    procs = {name: subprocess.Popen([*gateway, *args], env=env, cwd=ROOT, stdout=log,
                                    stderr=subprocess.STDOUT)
             for (name, log), args in zip(logs.items(), (
                 ["serve", "--bind", f"127.0.0.1:{port}"], ["worker"],
                 ["clock", "--interval", "1"]), strict=True)}
    try:
        _until(lambda: _ready(port), "gateway serve to answer /readyz", timeout=60)
        server = int((data_dir / "redis" / "redis.pid").read_text())
        for name in ("worker", "clock"):
            procs[name].send_signal(signal.SIGTERM)
            assert procs[name].wait(timeout=30) == 0, (tmp_path / f"{name}.log").read_text()
            assert _alive(server), f"Redis stopped when {name} exited, with serve running"
        procs["serve"].send_signal(signal.SIGTERM)
        assert procs["serve"].wait(timeout=30) == 0, (tmp_path / "serve.log").read_text()
        _until(lambda: not _alive(server), "Redis to stop with the last process", timeout=20)
        assert not (tmp_path / ".gunicorn").exists()
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in logs.values():
            log.close()
        stop_embedded_redis(data_dir)  # left by a failure above


def _ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    except requests.RequestException:
        return False
