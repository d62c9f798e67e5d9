"""Which errors in the drain's event-by-event pass are the database's, not the event's: those
fail the batch (and are waited out) instead of costing the event an attempt."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from ledger.bounds import OutOfRange
from workers.drain import _database_fault


def _raised_from(cause: BaseException, explicit: bool) -> BaseException:
    try:
        try:
            raise cause
        except BaseException as inner:
            if explicit:
                raise ValueError("wrapped") from inner
            raise ValueError("while handling it")  # noqa: B904 (the implicit context is the point)
    except ValueError as outer:
        return outer
    raise AssertionError("unreachable")


def _operational() -> OperationalError:
    return OperationalError("UPDATE invoices", {}, sqlite3.OperationalError("database is locked"))


def test_an_operational_error_is_the_databases():
    assert _database_fault(_operational())


def test_a_dead_connection_is_the_databases_whatever_its_class():
    dead = DBAPIError("SELECT 1", {}, Exception("server closed the connection"),
                      connection_invalidated=True)
    assert _database_fault(dead)
    assert not _database_fault(DBAPIError("SELECT 1", {}, Exception("bad value")))


@pytest.mark.parametrize("explicit", [True, False])
def test_an_error_raised_from_a_database_error_is_the_databases(explicit):
    assert _database_fault(_raised_from(_operational(), explicit))


def test_the_events_own_errors_are_not_the_databases():
    duplicate = IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed"))
    for exc in (duplicate, ValueError("has no amount"), KeyError("data"), OutOfRange("x")):
        assert not _database_fault(exc)
    assert not _database_fault(_raised_from(KeyError("id"), explicit=True))
