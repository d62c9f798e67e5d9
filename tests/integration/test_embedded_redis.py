"""The embedded Redis stops with the last process that used it: each user's pid is noted under
the data directory, and the last to exit (a user killed outright counts as gone) shuts it
down; `gateway redis stop` shuts it down at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from service.embedded_redis import live_users

ROOT = Path(__file__).resolve().parents[2]
# A process that uses the embedded Redis of argv[1] until its standard input closes.
_USER = ("import sys; from pathlib import Path; "
         "from service.embedded_redis import ensure_embedded_redis; "
         "ensure_embedded_redis(Path(sys.argv[1])); print('up', flush=True); sys.stdin.read()")


def _user(data_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _USER, str(data_dir)], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == "up\n"
    return proc


def _leave(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    proc.stdout.close()


def _server_pid(data_dir: Path) -> int:
    return int((data_dir / "redis" / "redis.pid").read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _until(check: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_the_last_user_to_exit_stops_the_server(tmp_path):
    first, second = _user(tmp_path), _user(tmp_path)
    server = _server_pid(tmp_path)
    assert live_users(tmp_path) == sorted([first.pid, second.pid])
    _leave(first)
    assert _alive(server), "stopped while a user was left"
    _leave(second)
    _until(lambda: not _alive(server), "the server to stop")
    assert live_users(tmp_path) == []


def test_a_user_killed_outright_does_not_keep_the_server_running(tmp_path):
    killed, last = _user(tmp_path), _user(tmp_path)
    server = _server_pid(tmp_path)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    for pipe in (killed.stdin, killed.stdout):
        assert pipe is not None
        pipe.close()
    _leave(last)
    _until(lambda: not _alive(server), "the server to stop")


def test_gateway_redis_stop_stops_the_server_of_the_data_directory(tmp_path):
    user = _user(tmp_path)
    server = _server_pid(tmp_path)
    env = {**os.environ, "GATEWAY_DATA_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)
    stopped = subprocess.run([sys.executable, "-m", "cli.main", "redis", "stop"], env=env,
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    assert f"stopped the embedded Redis of {tmp_path}" in stopped.stdout
    _until(lambda: not _alive(server), "the server to stop")
    _leave(user)
    again = subprocess.run([sys.executable, "-m", "cli.main", "redis", "stop"], env=env,
                           cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "no embedded Redis runs" in again.stdout


def test_the_embedded_redis_persists_every_write_before_it_answers(tmp_path):
    """It holds the Redis inbox's acknowledged events: AOF on, fsync'd on every write, never
    evicting, so the start-up check finds nothing to refuse."""
    import redis

    from service.embedded_redis import embedded_url
    from workers.intake import persistence_problems

    user = _user(tmp_path)
    try:
        client = redis.Redis.from_url(embedded_url(tmp_path))
        assert persistence_problems(client) == []
        client.close()
    finally:
        _leave(user)
