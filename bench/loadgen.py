"""A load generator for webhook POSTs: pre-signed requests, keep-alive connections, processes.

Requests are built and signed before the clock starts (raw HTTP/1.1 bytes), split between
client processes, and each process drives its connections with one ``selectors`` loop:

- closed loop (``rate=None``): every connection sends its next request as soon as the answer
  to the previous one is in, for ``seconds``; the throughput is answers per second;
- open loop (``rate=R``): requests are due at a fixed pace, R per second over all processes,
  whether or not earlier ones were answered; latency is measured from when a request was due,
  not from when a free connection sent it, so a slow server cannot hide its queue.

The generator shares the machine's cores with the server it loads; the floor is measured with
the same generator, so the ratio between the two is fair.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import selectors
import socket
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection


@dataclass
class Phase:
    """What one run of the generator saw."""

    seconds: float
    completed: int = 0  # answers received inside the window
    statuses: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    acked: list[int] = field(default_factory=list)  # indices of requests answered 2xx
    exhausted: bool = False  # a process ran out of pre-built requests before the window ended
    reconnects: int = 0

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]

    def merge(self, other: Phase) -> None:
        self.completed += other.completed
        self.statuses.update(other.statuses)
        self.latencies_ms += other.latencies_ms
        self.acked += other.acked
        self.exhausted |= other.exhausted
        self.reconnects += other.reconnects


def http_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}",
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def run(port: int, requests: list[bytes], *, processes: int, connections: int, seconds: float,
        rate: float | None = None) -> Phase:
    """Send ``requests`` (each at most once) to 127.0.0.1:port; see the module docstring.

    ``connections`` is per process: the closed loop keeps that many busy, the open loop opens
    at most that many.
    """
    ctx = multiprocessing.get_context("fork")
    share = len(requests) // processes
    pipes, procs = [], []
    start_at = time.time() + 0.5  # every process starts its window together
    for n in range(processes):
        reader, writer = ctx.Pipe(duplex=False)
        offset = n * share
        proc = ctx.Process(target=_client, args=(writer, port, requests, offset, share,
                                                 connections, seconds, rate and rate / processes,
                                                 start_at))
        proc.start()
        pipes.append(reader)
        procs.append(proc)
    total = Phase(seconds)
    for reader in pipes:
        total.merge(reader.recv())
    for proc in procs:
        proc.join()
    return total


def _client(out: Connection, port: int, requests: list[bytes], offset: int, count: int,
            connections: int, seconds: float, rate: float | None, start_at: float) -> None:
    loop = _Loop(port, requests, offset, count, connections)
    time.sleep(max(0.0, start_at - time.time()))
    phase = loop.closed(seconds) if rate is None else loop.open(seconds, rate)
    out.send(phase)
    out.close()


class _Conn:
    __slots__ = ("sock", "buf", "index", "due")

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.index = -1  # the request in flight, or -1
        self.due = 0.0  # when it was due (open loop) or sent (closed loop)


class _Loop:
    def __init__(self, port: int, requests: list[bytes], offset: int, count: int,
                 connections: int) -> None:
        self.port, self.requests = port, requests
        self.next, self.end = offset, offset + count
        self.max_conns = connections
        self.sel = selectors.DefaultSelector()
        self.idle: list[_Conn] = []
        self.busy = 0

    def _open(self) -> _Conn:
        conn = _Conn(self.port)
        self.sel.register(conn.sock, selectors.EVENT_READ, conn)
        return conn

    def _send(self, conn: _Conn, due: float) -> bool:
        if self.next >= self.end:
            return False
        conn.index, conn.due, conn.buf = self.next, due, b""
        self.next += 1
        self.busy += 1
        with contextlib.suppress(OSError):  # closed under us: the answer loop sees it, resends
            conn.sock.sendall(self.requests[conn.index])
        return True

    def _answers(self, timeout: float, phase: Phase, window_end: float) -> Iterator[_Conn]:
        """Yield each connection whose answer completed."""
        for key, _ in self.sel.select(timeout):
            conn: _Conn = key.data
            try:
                data = conn.sock.recv(65536)
            except OSError:  # reset: handled as a close
                data = b""
            if not data:  # the server closed it (keep-alive timeout, reset): resend anew
                self.sel.unregister(conn.sock)
                conn.sock.close()
                phase.reconnects += 1
                if conn in self.idle:
                    self.idle.remove(conn)
                if conn.index >= 0:  # a resent delivery the server may have stored: as a
                    fresh = self._open()  # provider's retry, the gateway counts a duplicate
                    fresh.index, fresh.due = conn.index, conn.due
                    fresh.sock.sendall(self.requests[conn.index])
                continue
            conn.buf += data
            status = _complete(conn.buf)
            if status is None:
                continue
            now = time.perf_counter()
            if now <= window_end:
                phase.completed += 1
                phase.latencies_ms.append((now - conn.due) * 1000)
            phase.statuses[status] += 1
            if 200 <= status < 300:
                phase.acked.append(conn.index)
            conn.index, conn.buf = -1, b""
            self.busy -= 1
            yield conn

    def closed(self, seconds: float) -> Phase:
        phase = Phase(seconds)
        start = time.perf_counter()
        window_end = start + seconds
        for _ in range(self.max_conns):
            self._send(self._open(), start)
        while self.busy:
            now = time.perf_counter()
            for conn in self._answers(max(0.0, min(1.0, window_end + 10 - now)), phase,
                                      window_end):
                now = time.perf_counter()
                if now < window_end and not self._send(conn, now):
                    phase.exhausted = True
            if time.perf_counter() > window_end + 10:
                break  # answers still missing 10 s after the window: count them as lost
        return phase

    def open(self, seconds: float, rate: float) -> Phase:
        phase = Phase(seconds)
        start = time.perf_counter()
        window_end = start + seconds
        interval = 1.0 / rate
        due = start
        backlog: list[float] = []  # due times of requests waiting for a free connection
        while True:
            now = time.perf_counter()
            while due <= now and due < window_end:
                backlog.append(due)
                due += interval
            while backlog and (self.idle or self._room()):
                conn = self.idle.pop() if self.idle else self._open()
                if not self._send(conn, backlog.pop(0)):
                    phase.exhausted = True
                    backlog.clear()
                    self.idle.append(conn)
            if due >= window_end and not backlog and not self.busy:
                break
            if now > window_end + 10:
                break
            wait = max(0.0, min(due - time.perf_counter(), 0.05)) if due < window_end else 0.05
            answered = list(self._answers(wait, phase, window_end + 10))
            self.idle.extend(answered)
        return phase

    def _room(self) -> bool:
        return len(self.sel.get_map()) < self.max_conns


def _complete(buf: bytes) -> int | None:
    """The status of a complete HTTP/1.1 answer in ``buf``, or None while bytes are missing."""
    head_end = buf.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    head = buf[:head_end].lower()
    length = 0
    at = head.find(b"\r\ncontent-length:")
    if at >= 0:
        line_end = head.find(b"\r\n", at + 2)
        length = int(head[at + 17:line_end if line_end >= 0 else None])
    if len(buf) < head_end + 4 + length:
        return None
    return int(buf[9:12])
