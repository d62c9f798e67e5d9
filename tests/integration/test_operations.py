"""Operating the pipeline: readiness, replay of dead letters, and a Redis outage."""

from __future__ import annotations

from sqlalchemy import select

from cli.main import run as main
from ledger.models import InboxEvent, InboxStatus
from sandbox import samples
from tests.support.cli import use_container_env
from tests.support.delivery import dead_event, deliver, drain_everything, run_worker
from tests.support.ledger import snapshot


def test_ready_when_database_and_redis_answer(client):
    """/readyz checks both stores."""
    resp = client.get("/readyz")
    assert resp.status_code == 200 and resp.json["checks"] == {"database": "ok", "redis": "ok"}


def test_not_ready_names_the_store_that_is_down(database_url, other_container):
    """With Redis unreachable /readyz answers 503 and says which check failed."""
    from gateway.app import create_app

    client = create_app(container=other_container(database_url, "redis://127.0.0.1:1/0")
                        ).test_client()
    resp = client.get("/readyz")
    assert resp.status_code == 503
    assert resp.json is not None
    assert resp.json["checks"]["database"] == "ok"
    assert resp.json["checks"]["redis"].startswith("unavailable")


def test_replay_failed_hands_dead_letters_back_to_the_workers(client, container, monkeypatch,
                                                              capsys):
    """`gateway replay --failed` puts dead events back to pending and enqueues them."""
    row = dead_event(client, container)
    use_container_env(monkeypatch, container)
    assert main(["replay", "--failed"]) == 0
    assert "re-enqueued 1 event" in capsys.readouterr().out
    with container.sessions() as s:
        again = s.get(InboxEvent, row.id)
        assert again.status == InboxStatus.PENDING and again.last_error
    assert container.redis.lrange(f"gateway:inbox:{row.partition}", 0, -1) == [
        str(row.id).encode()]


def test_replay_by_event_id_and_the_inbox_listing(client, container, monkeypatch, capsys):
    """`gateway inbox` lists a dead event with its error; `gateway replay ID` re-enqueues it."""
    row = dead_event(client, container)
    use_container_env(monkeypatch, container)
    assert main(["inbox", "--status", "dead"]) == 0
    listing = capsys.readouterr().out
    assert row.event_id in listing and "has no amount" in listing
    assert main(["replay", row.event_id]) == 0
    assert main(["replay", "WH-NOT-A-KNOWN-EVENT"]) == 2  # an unknown id is a user error


def test_a_redis_outage_after_the_commit_leaves_the_orderly_ledger(client, container,
                                                                   database_url, other_container):
    """With the database inbox, events acknowledged while Redis is down are swept in later and
    give the same ledger."""
    from gateway.app import create_app
    from tests.conftest import _clean
    from workers.sweeper import sweep

    events = samples.stripe_lifecycle(samples.Scenario(key="outage"))
    for event in events:
        deliver(client, "stripe", event)
    drain_everything(container)
    with container.sessions() as s:
        orderly = snapshot(s)
    _clean(container)

    no_redis = create_app(container=other_container(database_url, "redis://127.0.0.1:1/0",
                                                      inbox="database"))
    for event in events:
        deliver(no_redis.test_client(), "stripe", event)
    run_worker(container)  # nothing was enqueued: nothing happens
    with container.sessions() as s:
        assert set(s.scalars(select(InboxEvent.status))) == {InboxStatus.PENDING}
    assert sweep(container) == len(events)
    drain_everything(container)
    with container.sessions() as s:
        assert snapshot(s) == orderly


def test_refused_deliveries_are_the_redis_inboxs_to_list(container, monkeypatch, capsys):
    """With the database inbox there is no refused stream: asking for it is a user error that
    says why, not an empty list."""
    use_container_env(monkeypatch, container)
    monkeypatch.setenv("GATEWAY_INBOX", "database")
    assert main(["inbox", "--status", "refused"]) == 2
    assert "GATEWAY_INBOX=database" in capsys.readouterr().err
