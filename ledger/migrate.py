"""Run the Alembic migrations that ship with the package, and check a database is at their head.

Migrations run in the release step only (``gateway db upgrade``, the Procfile's ``release:``),
one upgrader at a time: on PostgreSQL under a session advisory lock on a fixed key, so that a
rolling deploy's several release steps migrate the schema once and the others find it at head;
on SQLite under an exclusive lock on a file beside the database (``<file>.migrate-lock``), so
that a second upgrader waits for the first however long it takes instead of failing after the
busy timeout. ``serve``, ``worker`` and ``clock`` never migrate: ``require_head`` refuses to
start them on a database that is not at the head revision.
"""

from __future__ import annotations

import fcntl
import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

import migrations
from ledger.db import make_engine
from service.errors import GatewayError

# The advisory lock the upgraders take (a fixed key, as ledger.locks derives its keys).
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.blake2b(b"gateway\x1fmigrations", digest_size=8).digest(), "big", signed=True)


class DatabaseNotAtHead(GatewayError):
    """The database's schema is not the one this code was written for: run the release step."""


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (idempotent), one upgrader at a time."""
    with migration_lock(url):
        command.upgrade(alembic_config(url), revision)


@contextmanager
def migration_lock(url: str) -> Iterator[None]:
    """Hold the migration lock of the database at ``url`` (waiting for it) for the block."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        engine = make_engine(url, poolclass=NullPool)
        try:
            # A session lock, on a connection of its own outside any transaction: the upgrade
            # commits on its own connection while this one holds the lock; if the process dies
            # the connection closes and PostgreSQL releases it.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"),
                                 {"key": MIGRATION_LOCK_KEY})
        finally:
            engine.dispose()
    elif backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        path = Path(f"{parsed.database}.migrate-lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:  # an in-memory database has one connection: nobody to race
        yield


def head_revision(url: str) -> str | None:
    """The head revision of the shipped migrations."""
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at (None: never migrated). A SQLite file that
    does not exist is not created to find out."""
    parsed = make_url(url)
    if (parsed.get_backend_name() == "sqlite" and parsed.database
            and parsed.database != ":memory:" and not Path(parsed.database).exists()):
        return None
    engine = make_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def require_head(url: str) -> None:
    """Return if the database at ``url`` is at the head revision; else raise DatabaseNotAtHead
    with a one-line message naming the database, both revisions and the command that fixes it.
    Raises SQLAlchemy's OperationalError when the database does not answer."""
    script = ScriptDirectory.from_config(alembic_config(url))
    head = script.get_current_head()
    current = current_revision(url)
    if current == head:
        return
    where = make_url(url).render_as_string(hide_password=True)
    if current is None:
        state = "has no schema (never migrated)"
    elif _known(script, current):
        state = f"is at revision {current}"
    else:
        state = f"is at revision {current}, which this code does not know (a newer release's?)"
    raise DatabaseNotAtHead(f"the database {where} {state}, but this code needs revision {head}: "
                            "run `gateway db upgrade` (the release step) first")


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except (CommandError, RevisionError):  # not one of ours
        return False
