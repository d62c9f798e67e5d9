"""The web tier's wait for the database is bounded: with the SQLite write lock held by another
process, gunicorn (the Procfile's line) answers a webhook 503 within seconds, not after the
workers' long busy timeout (nor gunicorn's 30-second timeout); released, nothing is lost.

SQLite on a file of the test's own, whatever TEST_DATABASE_URL says: the lock is SQLite's.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from ledger.migrate import upgrade
from sandbox import samples
from tests.e2e.conftest import process_env, procfile_line, wait_ready
from tests.support import stripe as sig
from tests.support.outages import free_port, sqlite_write_lock

# At once: as many as one gunicorn worker has threads (a fifth would wait for a thread, which
# is not the database's wait), so that at least one worker has several and its groups queue.
DELIVERIES = 4
BOUND = 5.0  # seconds; GATEWAY_WEB_DB_WAIT defaults to 3


def _post(base: str, event: dict[str, Any]) -> tuple[int, dict[str, Any], float]:
    raw = sig.body_of(event)
    started = time.monotonic()
    resp = requests.post(f"{base}/webhooks/{sig.MERCHANT}/stripe", data=raw, timeout=40,
                         headers={"Stripe-Signature": sig.signature(raw),
                                  "Content-Type": "application/json"})
    return resp.status_code, resp.json(), time.monotonic() - started


def test_a_held_write_lock_gets_503_within_seconds_and_redelivery_stores_it(
        container, spawn, tmp_path):
    """Four deliveries at once while the test holds the write lock: each is answered 503
    storage_unavailable in under 5 s, though the busy timeout is 30 s. Once the lock is
    released, each redelivery is answered 200 as new (it had not been stored) and is in the
    inbox once."""
    path = tmp_path / "web-wait.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    port = free_port()
    env = process_env(container.settings, PORT=str(port), DATABASE_URL=url,
                      GATEWAY_DB_BUSY_TIMEOUT="30", GATEWAY_INBOX="database")
    env.pop("GATEWAY_WEB_DB_WAIT", None)  # the default
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    spawn([procfile_line("web")], env, "web", shell=True)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    events = [samples.stripe_event("charge.succeeded", samples.Scenario(key=f"web-wait-{i}"))
              for i in range(DELIVERIES)]

    with sqlite_write_lock(str(path)), ThreadPoolExecutor(DELIVERIES) as pool:
        answers = list(pool.map(lambda e: _post(base, e), events))
    for status, body, took in answers:
        assert status == 503 and body["error"]["code"] == "storage_unavailable", body
        assert took < BOUND, f"answered after {took:.1f} s"

    for event, (status, body, _) in zip(events, [_post(base, e) for e in events], strict=True):
        assert status == 200 and body["event_id"] == event["id"], body
        assert body["duplicate"] is False
    with sqlite3.connect(path) as conn:
        stored = [row[0] for row in conn.execute("SELECT event_id FROM inbox_events")]
    assert sorted(stored) == sorted(e["id"] for e in events)


def test_an_admin_request_during_a_held_lock_gets_503_and_files_nothing(container, spawn,
                                                                       tmp_path):
    """A refund claim filed while the lock is held: 503 storage_unavailable (with Retry-After)
    within seconds, nothing filed; sent again with its Idempotency-Key once the lock is gone,
    it is filed once."""
    path = tmp_path / "admin-wait.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    port = free_port()
    env = process_env(container.settings, PORT=str(port), DATABASE_URL=url,
                      GATEWAY_DB_BUSY_TIMEOUT="30", GATEWAY_INBOX="database")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    spawn([procfile_line("web")], env, "web", shell=True)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    headers = {"Authorization": "Bearer test-admin-theopenhost-003",
               "Idempotency-Key": "during-the-lock"}
    claim = {"account": "cus_1", "payment": "ch_1", "reason": "it does not work"}

    def file() -> tuple[requests.Response, float]:
        started = time.monotonic()
        resp = requests.post(f"{base}/v1/refund-requests", json=claim, headers=headers,
                             timeout=40)
        return resp, time.monotonic() - started

    with sqlite_write_lock(str(path)):
        refused, took = file()
    assert refused.status_code == 503 and took < BOUND, (refused.text, took)
    assert refused.json()["error"]["code"] == "storage_unavailable"
    assert refused.headers["Retry-After"]
    filed, _ = file()
    again, _ = file()
    assert filed.status_code == again.status_code == 202
    assert again.json()["id"] == filed.json()["id"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM support_requests").fetchone() == (1,)


def test_on_postgresql_a_locked_inbox_gets_503_within_seconds(container, spawn):
    """PostgreSQL, the database inbox: with the inbox table locked by another session,
    gunicorn (the Procfile's line) answers a webhook 503 within seconds (its lock wait is
    bounded by GATEWAY_WEB_DB_WAIT), and the redelivery after the lock is released is
    stored."""
    url = container.settings.database_url
    if not url.startswith("postgresql"):
        pytest.skip("PostgreSQL's lock wait; TEST_DATABASE_URL is not PostgreSQL")
    port = free_port()
    env = process_env(container.settings, PORT=str(port), GATEWAY_INBOX="database")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    spawn([procfile_line("web")], env, "web", shell=True)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    event = samples.stripe_event("charge.succeeded", samples.Scenario(key="pg-web-wait"))
    with container.engine.connect() as locker:
        locker.exec_driver_sql("BEGIN")
        locker.exec_driver_sql("LOCK TABLE inbox_events IN ACCESS EXCLUSIVE MODE")
        status, body, took = _post(base, event)
        locker.exec_driver_sql("ROLLBACK")
    assert status == 503 and body["error"]["code"] == "storage_unavailable", body
    assert took < BOUND, f"answered after {took:.1f} s"
    status, body, _ = _post(base, event)
    assert status == 200 and body["duplicate"] is False
