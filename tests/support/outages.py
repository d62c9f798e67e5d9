"""Outages a process test can cause on loopback, to stores of its own and never anyone else's:
a Redis server it starts and stops, a TCP proxy in front of PostgreSQL it closes and reopens,
and an exclusive write lock on a SQLite file.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from service.embedded_redis import redis_binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server on a loopback port. ``persistent`` (the default): as the Redis inbox
    needs it, every write appended to its AOF and fsync'd before it answers, so a kill and a
    restart lose nothing (``lose_disk`` deletes the AOF: the restart is then empty, as after a
    lost disk). Otherwise without persistence: a restart empties it."""

    def __init__(self, workdir: Path, persistent: bool = True) -> None:
        self.persistent = persistent
        self.workdir, self.port = workdir, free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        binary = shutil.which("redis-server") or redis_binary()
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             *(["--appendonly", "yes", "--appendfsync", "always",
                "--maxmemory-policy", "noeviction"] if self.persistent
               else ["--appendonly", "no"]),
             "--dir", str(self.workdir), "--logfile", str(self.workdir / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not self.answers():
            if time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not start; see {self.workdir}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGKILL, as a crash or an OOM kill would: nothing is written anywhere."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def lose_disk(self) -> None:
        """Delete the append-only file(s) of a stopped server: its disk is gone."""
        assert self.proc is None or self.proc.poll() is not None, "stop the server first"
        for path in self.workdir.glob("appendonly*"):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def restart(self, down_for: float) -> None:
        self.stop()
        time.sleep(down_for)
        self.start()
        self.restarts += 1

    def answers(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False


class TcpProxy:
    """Forwards 127.0.0.1:``port`` to ``target``; ``close`` refuses and drops every connection
    (the database is unreachable), ``open`` accepts again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.outages = 0

    def open(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            _shut(listener)  # shutdown first: a bare close leaves a blocked accept() listening
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            _shut(conn)

    @contextmanager
    def down(self) -> Iterator[None]:
        self.close()
        self.outages += 1
        try:
            yield
        finally:
            self.open()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed
            if self._listener is not listener:  # accepted as it closed: refuse
                _shut(client)
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(a, b), daemon=True).start()


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    _shut(src)
    _shut(dst)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@contextmanager
def sqlite_write_lock(path: str) -> Iterator[None]:
    """Hold an exclusive write transaction on the SQLite file: every writer waits for its busy
    timeout and then fails, as if the database could not be written."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()
