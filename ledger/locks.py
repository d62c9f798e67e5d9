"""Named locks held until the transaction ends, for decisions that read before they write.

PostgreSQL runs transactions side by side, so two that read the same facts (an account's earlier
guarantee refunds, a payment's open requests) and then write could both pass a check meant for
one: ``serialize`` makes the second wait for the first to commit (a transaction-scoped advisory
lock). SQLite needs nothing: every transaction here is a write transaction (``BEGIN
IMMEDIATE``), so there is only ever one.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

from ledger.db import is_postgres
from ledger.objects import transaction_memo

LockName = tuple[str, ...]
_HELD = "advisory locks held"  # in the transaction's memo: the keys of the locks taken


def serialize(session: Session, *name: str) -> None:
    """Wait for, then hold until commit or rollback, the lock called ``name``."""
    serialize_all(session, [name])


def serialize_all(session: Session, names: Iterable[LockName]) -> None:
    """Wait for, then hold until commit or rollback, every lock in ``names``: in one statement,
    in the order of their keys (so two transactions that want some of the same locks never
    wait for each other in a circle), those the transaction does not hold yet.

    Taken on the session's connection: without flushing the session's pending writes first (a
    flush per lock undid a batch's grouped inserts). A lock already taken is not asked for
    again until the memo is forgotten (after any rollback, even of a savepoint, which gives
    back the locks taken inside it); asking again for a lock one holds is harmless."""
    if not is_postgres(session.get_bind()):
        return
    held: set[int] = transaction_memo(session).setdefault(_HELD, set())
    keys = sorted({_key(name) for name in names} - held)
    if not keys:
        return
    # unnest returns the array's elements in order, and the locks are taken row by row.
    session.connection().execute(
        text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"),
        {"keys": keys}).all()
    held.update(keys)


def _key(name: LockName) -> int:
    digest = hashlib.blake2b("\x1f".join(name).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
