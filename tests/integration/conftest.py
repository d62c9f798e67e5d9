"""Fixtures of the integration tests that more than one module uses."""

from __future__ import annotations

import io
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import responses
from sqlalchemy import text

from service.bootstrap import Container
from service.logs import configure_logging

PAYPAL_SANDBOX = "https://api-m.sandbox.paypal.com"

_HOLD = """
CREATE OR REPLACE FUNCTION test_hold_commit() RETURNS trigger AS $$
BEGIN
  IF NEW.event_id = '{event_id}' AND NEW.status = 'processed' THEN
    PERFORM pg_sleep(1.5);
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER test_hold_commit BEFORE UPDATE ON inbox_events
  FOR EACH ROW EXECUTE FUNCTION test_hold_commit();
"""


@pytest.fixture
def hold_commit(container: Container) -> Iterator[Callable[[str], None]]:
    """``hold_commit(event_id)``: the transaction that marks that inbox event processed is held
    1.5 s before it commits (a PostgreSQL trigger), so that another worker's transaction runs
    beside it. PostgreSQL only: SQLite has one writer at a time."""
    if container.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: the two transactions cannot overlap")

    def install(event_id: str) -> None:
        with container.engine.begin() as conn:
            conn.execute(text(_HOLD.format(event_id=event_id.replace("'", "''"))))

    yield install
    with container.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS test_hold_commit ON inbox_events"))
        conn.execute(text("DROP FUNCTION IF EXISTS test_hold_commit()"))


@pytest.fixture
def postgres(container: Container) -> Container:
    """The container, on PostgreSQL only: a test of row locks (SQLite takes none) skips."""
    if container.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: it takes no row locks")
    return container


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The process's logging as ``configure_logging`` sets it up, at DEBUG, into a buffer."""
    root = logging.getLogger()
    pinned = [logging.getLogger(n) for n in ("alembic", "sqlalchemy.engine", "stripe")]
    saved = (list(root.handlers), root.level, [p.level for p in pinned])
    stream = io.StringIO()
    configure_logging("DEBUG", "json", stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    for logger, level in zip(pinned, saved[2], strict=True):
        logger.setLevel(level)


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts a connection and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


@pytest.fixture
def paypal_refunds() -> Iterator[None]:
    """PayPal's sandbox answering its token call and refunding any sale (19.00 USD)."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.post(f"{PAYPAL_SANDBOX}/v1/oauth2/token",
                  json={"access_token": "A21", "token_type": "Bearer", "expires_in": 3600})
        rsps.post(re.compile(rf"{PAYPAL_SANDBOX}/v1/payments/sale/.*/refund"),
                  json={"id": "RF-1", "state": "completed",
                        "amount": {"total": "19.00", "currency": "USD"}})
        yield


@pytest.fixture
def new_york() -> Iterator[None]:
    """The process's local time zone is New York's (UTC-5 in January) for the test."""
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", "America/New_York")
        time.tzset()
        try:
            yield
        finally:
            patch.undo()
            time.tzset()
