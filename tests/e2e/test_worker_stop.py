"""`gateway worker` stops when asked (SIGTERM), within its grace period, with exit status 0,
whatever Redis does: up (RQ's warm shutdown), gone while the worker waited for jobs, or never
there at all."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis
from rq import Worker

from tests.e2e.conftest import process_env, worker_command
from tests.support.outages import RedisServer, free_port

GRACE = 10.0  # seconds a supervisor gives a process between SIGTERM and SIGKILL


def _until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes], log: Path) -> float:
    """SIGTERM; the seconds until the process exited, which must be within the grace, with 0."""
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        status = proc.wait(timeout=GRACE + 20)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker ignored SIGTERM; see {log}") from None
    took = time.monotonic() - started
    assert took < GRACE, f"stopped after {took:.1f} s; see {log}"
    assert status == 0, f"exit status {status}; see {log}"
    return took


def _registered(url: str) -> bool:
    try:
        return bool(Worker.all(connection=redis.Redis.from_url(url)))
    except redis.RedisError:
        return False


def test_a_worker_stops_on_sigterm_with_redis_up(container, spawn, tmp_path):
    """RQ's warm shutdown: the worker unregisters itself and exits 0."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        proc = spawn(worker_command(), process_env(container.settings, REDIS_URL=server.url),
                     "worker")
        _until(lambda: _registered(server.url), 30, "the worker to register")
        _stop(proc, tmp_path / "worker-0.log")
        assert not _registered(server.url), "the worker did not unregister"
    finally:
        server.stop()


def test_a_worker_whose_redis_died_stops_on_sigterm(container, spawn, tmp_path):
    """Redis SIGKILLed while the worker waited for jobs: RQ retries the connection with growing
    pauses, and the worker still stops at once when asked."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    log = tmp_path / "worker-0.log"
    try:
        proc = spawn(worker_command(), process_env(container.settings, REDIS_URL=server.url,
                                                   LOG_LEVEL="INFO"), "worker")
        _until(lambda: _registered(server.url), 30, "the worker to register")
        server.stop()
        _until(lambda: "could not connect to Redis" in log.read_text(errors="replace"), 20,
               "the worker to miss Redis")
        time.sleep(1.5)  # into RQ's growing pauses
        _stop(proc, log)
    finally:
        server.stop()


def test_a_worker_that_never_reached_redis_stops_on_sigterm(container, spawn, tmp_path):
    """No Redis at all (a closed port): the worker keeps starting again every 2 s, and stops at
    once when asked, whether it is starting or waiting to start."""
    url = f"redis://127.0.0.1:{free_port()}/14"
    log = tmp_path / "worker-0.log"
    proc = spawn(worker_command(), process_env(container.settings, REDIS_URL=url,
                                               LOG_LEVEL="INFO"), "worker")
    _until(lambda: "worker lost Redis" in log.read_text(errors="replace"), 30,
           "the worker to miss Redis")
    time.sleep(0.5)
    _stop(proc, log)
    assert "worker stopped on request" in log.read_text(errors="replace")
