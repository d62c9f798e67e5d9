"""Named locks held until the transaction ends, for decisions that read before they write.

PostgreSQL runs transactions side by side, so two that read the same facts (an account's earlier
guarantee refunds, a payment's open requests) and then write could both pass a check meant for
one: ``serialize`` makes the second wait for the first to commit (a transaction-scoped advisory
lock). SQLite needs nothing: every transaction here is a write transaction (``BEGIN
IMMEDIATE``), so there is only ever one.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.orm import Session


def serialize(session: Session, *name: str) -> None:
    """Wait for, then hold until commit or rollback, the lock called ``name``."""
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b("\x1f".join(name).encode(), digest_size=8).digest()
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": int.from_bytes(digest, "big", signed=True)})
