"""Which errors in the drain's event-by-event pass are the database's, not the event's: those
fail the batch (and are waited out) instead of costing the event an attempt. Any other error is
the event's, so that an event which always fails is dead-lettered rather than holding its
partition up for ever."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from psycopg import errors as pg
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from ledger.bounds import OutOfRange
from workers.drain import _database_fault


def _wrapped(orig: BaseException) -> OperationalError:
    return OperationalError("UPDATE invoices", {}, orig)


def _sqlite(message: str, code: int | None = None) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    if code is not None:
        error.sqlite_errorcode = code  # as sqlite3 sets it on what it raises
    return error


def _raised_from(cause: BaseException, how: str) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            if how == "from":
                raise ValueError("wrapped") from inner
            if how == "from None":
                raise ValueError("replaced") from None
            raise ValueError("while handling it")  # noqa: B904 (the implicit context is the point)
    except ValueError as outer:
        return outer
    raise AssertionError("unreachable")


@pytest.mark.parametrize("orig", [
    pg.LockNotAvailable("canceling statement due to lock timeout"),
    pg.DeadlockDetected("deadlock detected"),
    pg.SerializationFailure("could not serialize access"),
    pg.AdminShutdown("terminating connection due to administrator command"),
    pg.QueryCanceled("canceling statement due to statement timeout"),
    pg.TooManyConnections("sorry, too many clients already"),
    pg.ConnectionFailure("connection failure"),
    _sqlite("database is locked"),
    _sqlite("disk I/O error"),
    _sqlite("anything", code=5),  # SQLITE_BUSY
    _sqlite("anything", code=13),  # SQLITE_FULL
    _sqlite("anything", code=6 | (1 << 8)),  # SQLITE_LOCKED_SHAREDCACHE: its primary code counts
], ids=lambda e: f"{type(e).__name__}:{e}")
def test_an_unavailable_database_is_the_databases(orig):
    assert _database_fault(_wrapped(orig))


@pytest.mark.parametrize("orig", [
    pg.ProgramLimitExceeded("index row size exceeds maximum"),
    psycopg.OperationalError("sending query and params failed: number of parameters must be "
                             "between 0 and 65535"),
    _sqlite("too many SQL variables"),
    _sqlite("anything", code=1),  # SQLITE_ERROR
], ids=lambda e: f"{type(e).__name__}:{e}")
def test_a_statement_the_database_will_never_run_is_the_events(orig):
    assert not _database_fault(_wrapped(orig))


def test_a_dead_connection_is_the_databases_whatever_its_class():
    dead = DBAPIError("SELECT 1", {}, Exception("server closed the connection"),
                      connection_invalidated=True)
    assert _database_fault(dead)
    assert not _database_fault(DBAPIError("SELECT 1", {}, Exception("bad value")))


@pytest.mark.parametrize("how", ["from", "while handling"])
def test_an_error_raised_from_a_database_error_is_the_databases(how):
    assert _database_fault(_raised_from(_wrapped(_sqlite("database is locked")), how))


def test_an_error_that_replaced_a_database_error_is_not():
    """``raise ... from None`` says the earlier error is not the cause."""
    assert not _database_fault(_raised_from(_wrapped(_sqlite("database is locked")),
                                            "from None"))


def test_the_events_own_errors_are_not_the_databases():
    duplicate = IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))
    for exc in (duplicate, ValueError("has no amount"), KeyError("data"), OutOfRange("x")):
        assert not _database_fault(exc)
    assert not _database_fault(_raised_from(KeyError("id"), "from"))


def test_a_chain_of_causes_that_loops_is_read_once():
    """Code can tie two exceptions' contexts into a loop; the question still ends, with the
    answer of the errors in the loop."""
    first, second = ValueError("first"), KeyError("second")
    first.__context__, second.__context__ = second, first
    assert not _database_fault(first)
    locked = _wrapped(_sqlite("database is locked"))
    first.__context__, locked.__context__ = locked, first
    assert _database_fault(first)
