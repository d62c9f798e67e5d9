"""What the benchmarks share: the machine's description, processes, ports, memory, stores.

Every benchmark that starts servers starts them the way production does (the Procfile's
gunicorn line, `gateway worker`), against a fresh data directory, and measures its floor (a bare
Flask app, a no-op RQ job) in the same run on the same machine.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeGuard

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
for _path in (str(ROOT), str(BENCH)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from service.web import GUNICORN_ARGS  # noqa: E402  (the Procfile's web line, kept in sync)

PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gunicorn_command(port: int, app: str | None = None) -> list[str]:
    """The Procfile's web line on a loopback port; ``app`` replaces the application (floor)."""
    args = list(GUNICORN_ARGS)
    if app is not None:
        args[-1] = app
    return [PYTHON, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *args]


def wait_http(port: int, path: str = "/healthz", timeout: float = 60.0) -> None:
    """Wait until ``GET path`` answers anything below 500."""
    import http.client

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                conn.close()
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing answered on port {port} within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    """SIGTERM the process (gunicorn stops its workers itself); SIGKILL it if it hangs."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident set size of ``pid`` in MB, from /proc."""
    current = peak = 0.0
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                current = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return current, peak


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (gunicorn's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return sorted(found)


# -- stores ----------------------------------------------------------------------------------


def is_postgres_url(url: str | None) -> TypeGuard[str]:
    return url is not None and url.split(":", 1)[0].startswith("postgres")


@contextmanager
def scratch_database(url: str | None, data_dir: Path) -> Iterator[str]:
    """A fresh, empty ledger for one benchmark: a SQLite file under ``data_dir``, or a new
    PostgreSQL database created beside the one ``url`` names (dropped afterwards), so a
    benchmark never writes into a database someone uses."""
    if not is_postgres_url(url):
        yield f"sqlite:///{data_dir / 'gateway.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database}_run_{uuid.uuid4().hex[:8]}"
    admin_url = base.set(drivername="postgresql+psycopg")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def clear_redis(url: str) -> None:
    """Remove the gateway's and RQ's keys from a Redis the caller named (not FLUSHDB: the
    database may hold other things)."""
    import redis

    client = redis.Redis.from_url(url)
    for pattern in ("gateway:*", "rq:*"):
        keys = list(client.scan_iter(pattern, count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i:i + 1000])
    client.close()


@contextmanager
def persistent_redis(url: str | None, workdir: Path) -> Iterator[tuple[str | None, str]]:
    """The Redis to run against, and what it is. None (the embedded one, started as the gateway
    starts it: AOF, fsync'd before each answer) stays None. A server that does not persist every
    write (``workers.intake.persistence_problems``) cannot be the Redis inbox's record: a
    redis-server of the benchmark's own is started in ``workdir`` with ``appendonly yes``,
    ``appendfsync always`` and ``noeviction`` (the machine's server is left as it is)."""
    import redis

    from service.embedded_redis import redis_binary
    from workers.intake import persistence_problems

    if url is None:
        yield None, "embedded (appendonly yes, appendfsync always)"
        return
    client = redis.Redis.from_url(url)
    problems = persistence_problems(client)
    client.close()
    if not problems:
        yield url, "the given server (appendonly yes, appendfsync always)"
        return
    port = free_port()
    (workdir / "redis").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [shutil.which("redis-server") or redis_binary(), "--bind", "127.0.0.1",
         "--port", str(port), "--save", "", "--appendonly", "yes", "--appendfsync", "always",
         "--maxmemory-policy", "noeviction", "--dir", str(workdir / "redis"),
         "--logfile", str(workdir / "redis" / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    own = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis.from_url(own, socket_connect_timeout=0.5).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    try:
        yield own, (f"a redis-server of the benchmark's own, appendonly yes, appendfsync always "
                    f"(the given one does not persist every write: {'; '.join(problems)})")
    finally:
        proc.terminate()
        proc.wait()


@contextmanager
def data_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
    try:
        yield path
    finally:
        from service.embedded_redis import stop_embedded_redis

        stop_embedded_redis(path)
        shutil.rmtree(path, ignore_errors=True)


# -- the machine -------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    """Cores, memory, CPU model, and the versions of everything the figures depend on."""
    info = {"cores": str(os.cpu_count()), "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version, "os": f"{platform.system()} {platform.release()}"}
    meminfo = Path("/proc/meminfo").read_text()
    if match := re.search(r"MemTotal:\s+(\d+) kB", meminfo):
        info["ram"] = f"{int(match[1]) / 1024 / 1024:.1f} GiB"
    cpuinfo = Path("/proc/cpuinfo").read_text()
    if match := re.search(r"model name\s*:\s*(.+)", cpuinfo):
        info["cpu"] = match[1].strip()
    info["load"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["redis"] = _redis_version()
    return info


def _redis_version() -> str:
    from service.embedded_redis import redis_binary

    try:
        out = subprocess.run([redis_binary(), "--version"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    match = re.search(r"v=([\d.]+)", out)
    return f"{match[1]} (embedded)" if match else "unknown"


def server_versions(database_url: str | None, redis_url: str | None) -> dict[str, str]:
    """PostgreSQL's and a Redis server's versions, when the run uses them."""
    found: dict[str, str] = {}
    if is_postgres_url(database_url):
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        engine = create_engine(make_url(database_url).set(drivername="postgresql+psycopg"))
        with engine.connect() as conn:
            found["postgresql"] = str(conn.execute(text("SHOW server_version")).scalar())
        engine.dispose()
    if redis_url:
        import redis

        client = redis.Redis.from_url(redis_url)
        found["redis server"] = str(client.info("server")["redis_version"])
        client.close()
    return found


# -- profiles ----------------------------------------------------------------------------------


def py_spy() -> str | None:
    """The py-spy binary beside this Python, or on PATH; None when it is not installed."""
    beside = Path(PYTHON).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


def profile(pids: list[int], seconds: float, out_dir: Path, name: str,
            idle: bool = False) -> list[subprocess.Popen[bytes]]:
    """Start py-spy sampling each of ``pids`` for ``seconds`` into collapsed-stack files."""
    binary = py_spy()
    if binary is None:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for pid in pids:
        cmd = [binary, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "200",
               "-f", "raw", "--nonblocking", "-o", str(out_dir / f"{name}-{pid}.txt")]
        if idle:
            cmd.append("--idle")
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def summarise_profile(files: list[Path], top: int = 25) -> str:
    """Inclusive share of samples per function (``file:function``), highest first, over the
    collapsed stacks py-spy wrote; frames of the standard library's thread and selector
    plumbing are left in, so idle time shows as what it is."""
    inclusive: dict[str, int] = {}
    own: dict[str, int] = {}
    total = 0
    for path in files:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue  # a generated frame whose "file name" spans lines: too rare to matter
            count = int(count_text)
            total += count
            frames = [_frame_name(f) for f in stack.split(";")]
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + count
            own[frames[-1]] = own.get(frames[-1], 0) + count
    if not total:
        return "(no samples)"
    lines = [f"{total} samples; inclusive share (self share), top {top}:"]
    for frame, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"  {count / total:6.1%} ({own.get(frame, 0) / total:5.1%})  {frame}")
    lines.append("highest self share:")
    for frame, count in sorted(own.items(), key=lambda kv: -kv[1])[:12]:
        lines.append(f"  {count / total:6.1%}  {frame}")
    return "\n".join(lines)


def _frame_name(frame: str) -> str:
    """``function (path/to/module.py:123)`` -> ``module.py:function`` with a short path."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame.strip())
    if not match:
        return frame.strip()
    function, path = match[1], match[2]
    for marker in ("site-packages/", "/lib/python3.11/", str(ROOT) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{function}"
