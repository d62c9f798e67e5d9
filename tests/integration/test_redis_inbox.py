"""The Redis inbox (GATEWAY_INBOX=redis, the default): a delivery is acknowledged once it is in
its partition's stream; the drain stores it in the inbox table, commits, and only then
acknowledges the stream entry. Nothing acknowledged is lost, nothing is applied twice."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.envelope import paypal_envelope
from ledger.inbox import new_event_row
from ledger.models import InboxEvent, InboxStatus
from sandbox import samples
from service.bootstrap import Container
from service.config import Mode
from service.errors import ConfigError, TransmissionReused
from tests.support import stripe as sig
from tests.support.cli import use_container_env
from tests.support.delivery import deliver, drain_everything, run_worker, settle
from tests.support.outages import RedisServer
from tests.support.paypal import shared_signer
from workers.dispatch import flag_key, stream_key
from workers.drain import drain_partition
from workers.intake import GROUP, check_persistence, decode, move, persistence_problems, refused_key


def _event(key: str, event_type: str = "charge.succeeded") -> dict[str, Any]:
    return samples.stripe_event(event_type, samples.Scenario(key=key))


def _rows(container: Container) -> list[InboxEvent]:
    with container.sessions() as s:
        return list(s.scalars(select(InboxEvent).order_by(InboxEvent.id)))


def _streamed(container: Container) -> int:
    return sum(container.redis.xlen(stream_key(p)) for p in range(container.settings.partitions))


def _partition(container: Container, event: dict[str, Any]) -> int:
    from workers.dispatch import partition_of

    return partition_of("theopenhost", event["data"]["object"]["id"],
                        container.settings.partitions)


def test_an_acknowledged_delivery_is_in_its_stream_until_a_drain_commits_it(client, container):
    """The 200 comes with the event in Redis only; the drain stores and applies it, and then
    the stream holds nothing, read or unread."""
    event = _event("ri-basic")
    resp = sig.post(client, event)
    assert resp.status_code == 200 and resp.json["duplicate"] is False
    assert _rows(container) == [] and _streamed(container) == 1
    (entry_id, fields), = container.redis.xrange(stream_key(_partition(container, event)))
    row = decode(fields)
    assert row["raw_body"] == sig.body_of(event) and row["event_id"] == event["id"]
    assert row["headers"]["Stripe-Signature"].startswith("t=")
    run_worker(container)
    (stored,) = _rows(container)
    assert stored.status == InboxStatus.PROCESSED and stored.raw_body == sig.body_of(event)
    assert stored.received_at is not None and stored.deliveries == 1
    assert _streamed(container) == 0
    partition = _partition(container, event)
    assert container.redis.xpending(stream_key(partition), GROUP)["pending"] == 0
    assert not container.redis.exists(flag_key(partition))  # the drain gave the partition up


def test_redeliveries_answer_duplicate_and_are_counted_on_the_one_row(client, container):
    """Within the dedupe window the Redis inbox answers `duplicate` itself; every delivery is
    still counted on the row, and the event is applied once."""
    event = _event("ri-dup")
    answers = [sig.post(client, event).json["duplicate"] for _ in range(4)]
    assert answers == [False, True, True, True]
    drain_everything(container)
    (row,) = _rows(container)
    assert row.deliveries == 4 and row.status == InboxStatus.PROCESSED and row.attempts == 1


def test_a_late_duplicate_is_caught_by_the_tables_unique_key(client, container):
    """Once the dedupe key has expired, a redelivery reaches the stream again: the drain finds
    the event in the table, counts the delivery, and applies nothing twice."""
    event = _event("ri-late")
    sig.post(client, event)
    drain_everything(container)
    for key in container.redis.scan_iter("gateway:seen:*"):
        container.redis.delete(key)  # the window has passed
    assert sig.post(client, event).json["duplicate"] is False
    drain_everything(container)
    (row,) = _rows(container)
    assert row.deliveries == 2 and row.attempts == 1 and row.status == InboxStatus.PROCESSED


def test_entries_a_killed_drain_had_read_are_claimed_by_the_next(client, other_container,
                                                                 database_url, redis_url):
    """A drain that read entries and died before storing them leaves them pending in the
    group; after GATEWAY_DRAIN_LOCK_SECONDS the next drain claims, stores and applies them."""
    from gateway.app import create_app
    from service.bootstrap import install

    c = install(other_container(database_url, redis_url, drain_lock_seconds=1))
    from tests.conftest import _clean

    _clean(c)
    web = create_app(container=c).test_client()
    event = _event("ri-claimed")
    sig.post(web, event)
    partition = _partition(c, event)
    killed = c.intake.take(partition)  # read, then the process died
    assert len(killed) == 1 and c.redis.xpending(stream_key(partition), GROUP)["pending"] == 1
    assert _rows(c) == []
    assert drain_partition(partition) == 0  # too soon: the entry is not idle long enough
    time.sleep(1.1)
    c.redis.delete(flag_key(partition))
    assert drain_partition(partition) == 1
    (row,) = _rows(c)
    assert row.status == InboxStatus.PROCESSED and row.deliveries == 1
    assert c.redis.xlen(stream_key(partition)) == 0


def test_a_drain_killed_between_its_commit_and_the_acknowledgement_applies_nothing_twice(
        client, container):
    """The rows were committed but the entries not acknowledged: the next drain stores them
    again (the table already holds them) and applies each event once."""
    from ledger.inbox import store_rows

    events = [_event("ri-acked-1"), _event("ri-acked-2", "invoice.created")]
    for event in events:
        sig.post(client, event)
    taken = [(p, e) for p in range(container.settings.partitions)
             for e in container.intake.take(p)]
    store_rows(container.engine, [decode(fields) for _, (_, fields) in taken])  # committed
    with container.sessions() as s:  # ...and the entries never acknowledged: the worker died
        assert s.scalar(select(func.count()).select_from(InboxEvent)) == 2
    for partition, (entry_id, _) in taken:  # idle for longer than a drain may hold them
        container.redis.xclaim(stream_key(partition), GROUP, container.intake.consumer, 0,
                               [entry_id], idle=3_600_000)
    drain_everything(container)
    rows = _rows(container)
    assert len(rows) == 2 and {r.attempts for r in rows} == {1}
    assert {r.status for r in rows} == {InboxStatus.PROCESSED}
    assert _streamed(container) == 0


def _paypal_row(container: Container, key: str, transmission: str) -> dict[str, Any]:
    event = samples.paypal_event("PAYMENT.SALE.COMPLETED",
                                 samples.Scenario(key=key, payment_method="paypal"))
    merchant = container.settings.merchant("theopenhost")
    assert merchant is not None
    return new_event_row(merchant=merchant, provider="paypal", envelope=paypal_envelope(event),
                         livemode=False, raw=sig.body_of(event),
                         headers={"Paypal-Transmission-Id": transmission}, partition=0)


def test_a_transmission_that_carried_another_event_is_refused_at_the_door(container):
    """PayPal signs only a CRC of the body: a second event under a transmission id already
    seen is a forgery, refused before it is appended."""
    container.intake.append(_paypal_row(container, "ri-tx-1", "TX-1"))
    with pytest.raises(TransmissionReused):
        container.intake.append(_paypal_row(container, "ri-tx-2", "TX-1"))
    assert container.redis.xlen(stream_key(0)) == 1


def test_a_transmission_refused_by_the_table_is_kept_not_dropped(container, caplog):
    """After the dedupe window, the table's unique key is what refuses a reused transmission:
    the drain keeps that entry on the refused stream, stores the rest of its batch, and moves
    on."""
    caplog.set_level(logging.ERROR, logger="workers.intake")
    assert len(_reuse_a_transmission_after_the_window(container)) == 1
    stored = {r.event_id: r.transmission_id or "" for r in _rows(container)}
    assert sorted(stored.values()) == ["TX-2", "TX-3"]
    (refused,) = container.redis.xrange(refused_key())
    assert b"already carried another event" in refused[1][b"reason"]
    assert decode(refused[1])["transmission_id"] == "TX-2"
    assert container.redis.xlen(stream_key(0)) == 0
    assert any("refused by the inbox" in r.getMessage() for r in caplog.records)


def _reuse_a_transmission_after_the_window(container: Container) -> list[int]:
    """TX-2 stored; then, its dedupe keys gone, a forgery under TX-2 and an honest TX-3 in one
    batch: the table refuses the forgery. Returns the inbox ids the batch stored."""
    container.intake.append(_paypal_row(container, "ri-txt-1", "TX-2"))
    settle(container)
    for key in container.redis.scan_iter("gateway:*:*"):
        if key.startswith((b"gateway:seen:", b"gateway:transmission:")):
            container.redis.delete(key)
    container.intake.append(_paypal_row(container, "ri-txt-2", "TX-2"))  # the forgery
    container.intake.append(_paypal_row(container, "ri-txt-3", "TX-3"))  # an honest event
    return move(container.intake, container.engine, 0, container.intake.take(0))


def test_gateway_inbox_counts_the_streams_and_lists_the_refused(container, monkeypatch, capsys):
    """`gateway inbox` says how many deliveries wait in Redis (acknowledged, not yet in the
    table) and how many the table refused; `--status refused` lists those with the reason."""
    from cli.main import run as main

    _reuse_a_transmission_after_the_window(container)
    container.intake.append(_paypal_row(container, "ri-txt-4", "TX-4"))  # not drained yet
    use_container_env(monkeypatch, container)
    assert main(["inbox", "--status", "refused"]) == 0
    counts, redis_line, refused, *rest = capsys.readouterr().out.splitlines()
    assert json.loads(counts) == {"pending": 2}  # TX-2 and TX-3 stored, never applied here
    assert json.loads(redis_line) == {"in_redis_streams": 1, "refused": 1}
    forgery = _paypal_row(container, "ri-txt-2", "TX-2")
    assert refused.split("\t")[1:5] == ["theopenhost", "paypal", forgery["event_id"],
                                         "PAYMENT.SALE.COMPLETED"]
    assert "already carried another event" in refused.split("\t")[5]
    assert rest == []  # no dead event


def test_an_append_while_the_partition_is_held_keeps_the_drain_going(container):
    """The drain gives its partition up only when nothing waits: an entry appended while it
    holds the lease keeps it; once read and stored, the flag goes."""
    event = _event("ri-release")
    merchant = container.settings.merchant("theopenhost")
    assert merchant is not None
    row = new_event_row(merchant=merchant, provider="stripe", envelope=_envelope(event),
                        livemode=False, raw=sig.body_of(event), headers={}, partition=3)
    assert container.intake.lease(3, "mine")
    assert container.intake.append(row).schedule is False  # held: no second drain
    assert container.intake.release(3, "mine") is False and container.redis.exists(flag_key(3))
    move(container.intake, container.engine, 3, container.intake.take(3))
    assert container.intake.release(3, "mine") is True and not container.redis.exists(flag_key(3))


def test_one_drain_at_a_time_holds_a_partition(client, container):
    """A second drain job for a partition (its flag expired while the first waited in the
    queue) leaves at once; a drain whose lease was taken over stops and leaves the flag to its
    holder; one whose flag merely expired takes it back."""
    event = _event("ri-lease")
    sig.post(client, event)
    partition = _partition(container, event)
    assert container.intake.lease(partition, "first")
    assert drain_partition(partition) == 0  # the second job: nothing taken
    assert container.redis.xlen(stream_key(partition)) == 1
    assert not container.intake.lease(partition, "second")
    assert container.intake.release(partition, "second") is True  # not its lease: stop...
    assert container.redis.get(flag_key(partition)) == b"draining:first"  # ...and leave it
    assert container.intake.extend(partition, "second") is False
    container.redis.delete(flag_key(partition))  # the first drain died; its lease expired
    assert drain_partition(partition) == 1
    assert not container.redis.exists(flag_key(partition))


def _envelope(event: dict[str, Any]) -> Any:
    from gateway.envelope import stripe_envelope

    return stripe_envelope(event)


def test_the_sweeper_schedules_a_partition_whose_stream_holds_entries(client, container):
    """A drain job lost with its flag (the flag expired, the job never ran) is no loss: the
    sweeper sees the stream's entries and schedules the partition again."""
    from workers.sweeper import sweep

    event = _event("ri-sweep")
    sig.post(client, event)
    container.queue.empty()
    container.redis.delete(flag_key(_partition(container, event)))
    sweep(container)
    run_worker(container)
    (row,) = _rows(container)
    assert row.status == InboxStatus.PROCESSED


def test_the_database_inbox_still_commits_on_the_request_path(other_container, database_url,
                                                               redis_url):
    """GATEWAY_INBOX=database: the row is in the table when the 200 is sent; nothing streams."""
    from gateway.app import create_app
    from tests.conftest import _clean

    c = other_container(database_url, redis_url, inbox="database")
    _clean(c)
    event = _event("ri-database")
    assert sig.post(create_app(container=c).test_client(), event).status_code == 200
    (row,) = _rows(c)
    assert row.event_id == event["id"] and _streamed(c) == 0


def test_an_unknown_inbox_setting_stops_the_process(tmp_path: Path):
    from service.config import load_settings

    with pytest.raises(ConfigError, match="GATEWAY_INBOX must be one of redis, database"):
        load_settings({"GATEWAY_DATA_DIR": str(tmp_path), "GATEWAY_INBOX": "memory"})


def _live(container: Container) -> Any:
    import dataclasses

    merchants = {name: dataclasses.replace(m, mode=Mode.LIVE)
                 for name, m in container.settings.merchants.items()}
    return dataclasses.replace(container.settings, merchants=merchants)


def test_a_live_merchant_is_refused_on_a_redis_that_may_lose_events(container, tmp_path, caplog):
    """At start-up: a Redis without `appendonly yes`, `appendfsync always` and `noeviction`
    refuses a live merchant, naming what is wrong; a sandbox one gets a loud warning."""
    loose = RedisServer(tmp_path / "loose", persistent=False)
    loose.start()
    try:
        import redis as redis_py

        client = redis_py.Redis.from_url(loose.url)
        problems = persistence_problems(client)
        assert any("appendonly is 'no'" in p for p in problems), problems
        with pytest.raises(ConfigError, match="appendonly is 'no'"):
            check_persistence(_live(container), client)
        caplog.set_level(logging.WARNING, logger="workers.intake")
        check_persistence(container.settings, client)  # sandbox: starts, and says so
        assert any("may lose acknowledged events" in r.getMessage() for r in caplog.records)
        client.close()
    finally:
        loose.stop()
    safe = RedisServer(tmp_path / "safe")
    safe.start()
    try:
        import redis as redis_py

        client = redis_py.Redis.from_url(safe.url)
        assert persistence_problems(client) == []
        check_persistence(_live(container), client)  # no error
        client.close()
    finally:
        safe.stop()


def test_an_acknowledged_event_survives_a_redis_kill(tmp_path, other_container, database_url):
    """Killed (SIGKILL) right after the 200 and restarted from its append-only file, Redis
    still holds the event, and the drain applies it."""
    from gateway.app import create_app
    from service.bootstrap import install
    from tests.conftest import _clean

    server = RedisServer(tmp_path / "aof")
    server.start()
    try:
        c = install(other_container(database_url, server.url))
        _clean(c)
        event = _event("ri-kill")
        assert sig.post(create_app(container=c).test_client(), event).status_code == 200
        server.restart(down_for=0)
        c.redis.connection_pool.disconnect()
        assert _streamed(c) == 1
        drain_everything(c)
        (row,) = _rows(c)
        assert row.status == InboxStatus.PROCESSED and row.event_id == event["id"]
    finally:
        server.stop()


def test_paypal_deliveries_go_through_the_stream_too(client, container):
    """A signed PayPal event takes the same path: streamed, stored by the drain, applied."""
    event = samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED",
                                 samples.Scenario(key="ri-paypal", payment_method="paypal"))
    deliver(client, "paypal", event, shared_signer())
    assert _rows(container) == [] and _streamed(container) == 1
    drain_everything(container)
    (row,) = _rows(container)
    assert row.provider == "paypal" and row.status == InboxStatus.PROCESSED
    assert row.transmission_id is not None


def test_entries_stay_in_the_stream_until_the_table_has_committed_them(client, container,
                                                                       other_container,
                                                                       redis_url):
    """A drain whose database does not answer acknowledges nothing: the entries wait in the
    stream, and a later drain stores and applies them."""
    from sqlalchemy.exc import OperationalError

    event = _event("ri-db-down")
    sig.post(client, event)
    partition = _partition(container, event)
    down = other_container("postgresql://gateway@127.0.0.1:1/none", redis_url)
    entries = down.intake.take(partition)
    assert len(entries) == 1
    with pytest.raises(OperationalError):
        move(down.intake, down.engine, partition, entries)
    assert container.redis.xlen(stream_key(partition)) == 1
    assert container.redis.xpending(stream_key(partition), GROUP)["pending"] == 1
    (entry_id, _), = entries
    container.redis.xclaim(stream_key(partition), GROUP, container.intake.consumer, 0,
                           [entry_id], idle=3_600_000)  # the failed drain's lock has expired
    drain_everything(container)
    (row,) = _rows(container)
    assert row.status == InboxStatus.PROCESSED and _streamed(container) == 0


def test_a_redis_that_was_down_at_start_up_is_checked_on_the_first_delivery(container,
                                                                            tmp_path):
    """Redis may not answer when a process starts: the first delivery checks it. A live
    merchant's delivery is then refused (503: the provider retries, nothing acknowledged can be
    lost) on a Redis that may lose it; a sandbox merchant's is taken."""
    import dataclasses

    from gateway.app import create_app

    loose = RedisServer(tmp_path / "loose-later", persistent=False)
    loose.start()
    try:
        merchants = dict(container.settings.merchants)
        merchants["theopenhost"] = dataclasses.replace(merchants["theopenhost"], mode=Mode.LIVE)
        settings = dataclasses.replace(container.settings, redis_url=loose.url,
                                       merchants=merchants)
        c = Container(settings)
        web = create_app(container=c).test_client()
        live = sig.post(web, {**_event("ri-live"), "livemode": True})
        assert live.status_code == 503 and live.json["error"]["code"] == "storage_unavailable"
        sandbox = sig.post(web, _event("ri-sandbox"), merchant="oneclick",
                           secret="whsec_test_oneclick_current")
        assert sandbox.status_code == 200
        assert c.redis.xlen(stream_key(_partition(c, _event("ri-live")))) == 0
        c.close()
    finally:
        loose.stop()


def test_a_batch_applies_its_events_in_the_order_they_were_delivered(client, container):
    """Inbox ids follow the stream's order, whatever the event ids: an upcoming invoice
    delivered after its subscription (same partition) finds it, with no retry, even when its
    event id sorts first."""
    scenario = samples.Scenario(key="ri-order")
    created = samples.stripe_event("customer.subscription.created", scenario)
    upcoming = samples.stripe_event("invoice.upcoming", scenario, cycle=1)
    created["id"], upcoming["id"] = "evt_zzz_ri_order", "evt_aaa_ri_order"
    for event in (created, upcoming):
        assert sig.post(client, event).status_code == 200
    run_worker(container)
    rows = {r.event_id: r for r in _rows(container)}
    assert rows["evt_zzz_ri_order"].id < rows["evt_aaa_ri_order"].id
    assert {(r.status, r.attempts) for r in rows.values()} == {(InboxStatus.PROCESSED, 1)}


def test_a_transmission_id_the_table_cannot_hold_is_refused_before_the_200(client, container):
    """A signed PayPal delivery whose transmission id is longer than the inbox's column holds
    gets 400 at the door, rather than a 200 for a row the drain could never store."""
    event = samples.paypal_event("BILLING.SUBSCRIPTION.ACTIVATED",
                                 samples.Scenario(key="ri-long-tx", payment_method="paypal"))
    raw = sig.body_of(event)
    headers = shared_signer().headers(raw, "WH-THEOPENHOST-SANDBOX-003",
                                      transmission_id="T" * 256)
    resp = client.post("/webhooks/theopenhost/paypal", data=raw, headers=headers,
                       content_type="application/json")
    assert resp.status_code == 400 and resp.json["error"]["code"] == "malformed_header"
    assert _streamed(container) == 0


def test_a_row_the_table_refuses_is_kept_aside_and_the_rest_of_its_batch_is_stored(container,
                                                                                  caplog):
    """A stream entry the inbox table refuses for a reason of its own (here a value its column
    cannot hold) goes to the refused stream with the reason; the other entries of its batch
    are stored and applied, and nothing is left to fail again."""
    bad = _paypal_row(container, "ri-bad-row", "TX-BAD")
    bad["event_type"] = "X" * 300  # more than the column's 128: PostgreSQL refuses it
    good = _paypal_row(container, "ri-good-row", "TX-GOOD")
    container.intake.append(bad)
    container.intake.append(good)
    if container.engine.dialect.name == "sqlite":  # SQLite keeps any length: refuse another way
        from sqlalchemy import event as sa_event

        def refuse_bad(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
            rows = params if isinstance(params, list | tuple) else [params]
            if "INSERT" in statement and any("X" * 300 in str(p) for p in rows):
                raise __import__("sqlite3").IntegrityError("CHECK constraint failed: event_type")

        sa_event.listen(container.engine, "before_cursor_execute", refuse_bad)
    caplog.set_level(logging.ERROR, logger="workers.intake")
    moved = move(container.intake, container.engine, 0, container.intake.take(0))
    assert len(moved) == 1
    assert [r.transmission_id for r in _rows(container)] == ["TX-GOOD"]
    (refused,) = container.redis.xrange(refused_key())
    assert decode(refused[1])["transmission_id"] == "TX-BAD"
    assert container.redis.xlen(stream_key(0)) == 0
    assert not container.redis.exists(f"gateway:seen:theopenhost\x00paypal\x00{bad['event_id']}")


def test_a_long_drain_hands_its_partition_to_a_fresh_job(container):
    """After its time budget a drain leaves the partition "queued" for the job it enqueues;
    that job takes the lease. A drain that lost its lease cannot hand anything over."""
    assert container.intake.lease(5, "long")
    assert container.intake.hand_over(5, "long")
    assert container.redis.get(flag_key(5)) == b"queued"
    assert container.intake.lease(5, "fresh")
    assert container.intake.hand_over(5, "long") is False
    assert container.redis.get(flag_key(5)) == b"draining:fresh"


def test_the_sweeper_removes_the_consumers_of_stopped_drains(other_container, database_url,
                                                            redis_url):
    """Each drain process reads under a name of its own; one that has stopped leaves its name
    in the group. The sweeper removes a name idle for longer than a lock period once it holds
    no entry; a name still holding entries is kept (they must stay claimable), and so is one
    used within the lock period."""
    from service.bootstrap import install
    from tests.conftest import _clean
    from workers.sweeper import sweep

    c = install(other_container(database_url, redis_url, drain_lock_seconds=1))
    _clean(c)
    theopenhost = c.settings.merchant("theopenhost")
    assert theopenhost is not None

    def append(key: str) -> None:
        event = _event(key)
        c.intake.append(new_event_row(
            merchant=theopenhost, provider="stripe", envelope=_envelope(event), livemode=False,
            raw=sig.body_of(event), headers={}, partition=0))

    def read(name: str) -> list[Any]:  # new entries only (a drain's claim would take others)
        answer: Any = c.redis.xreadgroup(GROUP, name, {stream_key(0): ">"}, count=1)
        return [entry for _, entries in answer for entry in entries]

    append("ri-prune-done")
    c.redis.xgroup_create(stream_key(0), GROUP, id="0")  # as a drain's first read makes it
    (done,) = read("stopped:1")
    c.intake.done(0, [done[0]])  # stored and acknowledged: stopped:1 holds nothing
    append("ri-prune-held")
    assert len(read("stopped:2")) == 1  # read, never stored: stopped:2 holds it
    time.sleep(1.1)
    append("ri-prune-live")
    (live,) = read("live:3")  # a drain at work: it read just now
    c.intake.done(0, [live[0]])
    sweep(c)
    left = {_text(x["name"]): x["pending"]
            for x in c.redis.xinfo_consumers(stream_key(0), GROUP)}
    assert left == {"stopped:2": 1, "live:3": 0}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
