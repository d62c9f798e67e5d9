"""Migrations run in the release step, one upgrader at a time; processes check the head.

Two `gateway db upgrade` at once (a rolling deploy's release steps) both succeed and migrate
the schema once: PostgreSQL serialises them with an advisory lock, SQLite with a file lock.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from ledger.db import make_engine
from ledger.migrate import (
    MIGRATION_LOCK_KEY,
    DatabaseNotAtHead,
    current_revision,
    head_revision,
    require_head,
    upgrade,
)
from ledger.models import Base

ROOT = Path(__file__).resolve().parents[2]
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
on_postgres = pytest.mark.skipif(
    not TEST_DATABASE_URL or make_url(TEST_DATABASE_URL).get_backend_name() != "postgresql",
    reason="needs TEST_DATABASE_URL on a PostgreSQL server (a scratch database is made there)")


def _upgraders(url: str, tmp_path: Path, count: int = 2) -> list[subprocess.Popen[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")
           and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"DATABASE_URL": url, "GATEWAY_DATA_DIR": str(tmp_path / "data")})
    return [subprocess.Popen([sys.executable, "-m", "cli.main", "db", "upgrade"], cwd=ROOT,
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(count)]


def _finish(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "database is at the latest revision" in out


def _assert_migrated_once(url: str) -> None:
    require_head(url)
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).all() == [
                (head_revision(url),)]
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        engine.dispose()


def test_require_head_names_the_database_its_revision_and_the_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    head = head_revision(url)
    with pytest.raises(DatabaseNotAtHead, match=rf"ledger\.db has no schema \(never migrated\), "
                                                rf"but this code needs revision {head}: run "
                                                r"`gateway db upgrade`"):
        require_head(url)
    assert not (tmp_path / "ledger.db").exists()
    upgrade(url, "0007")
    assert current_revision(url) == "0007"
    with pytest.raises(DatabaseNotAtHead, match=rf"is at revision 0007, but .* {head}"):
        require_head(url)
    upgrade(url)
    require_head(url)


def test_a_revision_this_code_does_not_know_is_named_as_such(tmp_path):
    """A database a newer release migrated: the message does not pretend it is behind."""
    url = f"sqlite:///{tmp_path / 'ahead.db'}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(DatabaseNotAtHead, match="revision 9999, which this code does not know"):
        require_head(url)


def test_two_upgrades_at_once_on_sqlite_both_succeed(tmp_path):
    """The second waits on the file lock beside the database, then finds it at head."""
    url = f"sqlite:///{tmp_path / 'release.db'}"
    _finish(_upgraders(url, tmp_path))
    _assert_migrated_once(url)
    assert (tmp_path / "release.db.migrate-lock").exists()


@pytest.fixture
def scratch_postgres() -> Iterator[str]:
    """A fresh database on TEST_DATABASE_URL's server, dropped afterwards (the test database
    itself is never touched)."""
    server = make_url(TEST_DATABASE_URL)
    name = f"gateway_release_{uuid.uuid4().hex[:12]}"
    admin = make_engine(server.set(database="postgres").render_as_string(hide_password=False),
                        poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@on_postgres
def test_two_upgrades_at_once_on_postgresql_both_succeed_and_migrate_once(scratch_postgres,
                                                                          tmp_path):
    """Both wait on the advisory lock while it is held (here, by the test), then one migrates
    and the other finds the schema at head: both exit 0."""
    url = scratch_postgres
    holder = make_engine(url, poolclass=NullPool)
    try:
        with holder.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            procs = _upgraders(url, tmp_path)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _lock_waiters(conn) < 2:
                assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
                time.sleep(0.2)
            assert _lock_waiters(conn) == 2  # both upgraders are queued on the lock
            assert current_revision(url) is None  # and neither has touched the schema
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        _finish(procs)
    finally:
        holder.dispose()
    _assert_migrated_once(url)


@on_postgres
def test_two_upgrades_racing_freely_on_postgresql_both_succeed(scratch_postgres, tmp_path):
    """The same without the test holding the lock: started together, both exit 0."""
    _finish(_upgraders(scratch_postgres, tmp_path, count=3))
    _assert_migrated_once(scratch_postgres)


@on_postgres
def test_the_head_check_names_a_postgresql_database_without_its_password(scratch_postgres):
    url = make_url(scratch_postgres).set(password="s3cret-pw").render_as_string(
        hide_password=False)  # the server trusts local connections: the password is not used
    with pytest.raises(DatabaseNotAtHead) as caught:
        require_head(url)
    message = str(caught.value)
    assert "s3cret-pw" not in message and "***" in message
    database = make_url(scratch_postgres).database
    assert database is not None and database in message and "never migrated" in message


def _lock_waiters(conn) -> int:
    """Sessions of this database waiting for the migration lock."""
    key = MIGRATION_LOCK_KEY & 0xFFFFFFFFFFFFFFFF
    return int(conn.execute(text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND classid::bigint = :hi AND objid::bigint = :lo"),
        {"hi": key >> 32, "lo": key & 0xFFFFFFFF}).scalar_one())
