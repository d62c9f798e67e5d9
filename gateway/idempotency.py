"""Idempotent admin requests: the same ``Idempotency-Key`` with the same body gets the same answer.

As Stripe's API does: a support tool that retries, or an agent who clicks twice, sends the key
again and gets the first answer back (same request id, same status) without anything being
filed twice; the same key with a different body is refused with ``422`` naming the key. Keys are
kept per merchant; the clock deletes them after ``KEEP`` (at least the 24 hours promised).

The answer is stored in the same transaction as the work it answers for, so a crash leaves
either both or neither. Requests with one key are serialised (a lock named by the key), so a
second copy sent while the first is being worked on waits for it and then replays its answer.
Only successful answers are stored: an error changed nothing, and the same request may be tried
again under the same key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Request
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from gateway.validation import InvalidBody
from ledger.locks import serialize
from ledger.models import IdempotencyKey
from service.errors import GatewayError

HEADER = "Idempotency-Key"
KEEP = timedelta(hours=72)
_MAX_KEY = 255

Work = Callable[[Session], tuple[int, dict[str, Any]]]


class KeyReused(GatewayError):
    """The key was first used with another request."""

    def __init__(self, key: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was first used with a different request; "
                         "use a new key for a new request")
        self.key = key


@dataclass(frozen=True, slots=True)
class Claim:
    merchant: str
    key: str
    fingerprint: str  # the method, path and body it was first sent with


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool


def claim_of(request: Request, merchant: str) -> Claim | None:
    """The request's key, or None when it sends none; ``InvalidBody`` for a malformed key."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 0 < len(key) <= _MAX_KEY or not key.isascii() or not key.isprintable():
        raise InvalidBody(HEADER, f"must be 1 to {_MAX_KEY} printable ASCII characters")
    return Claim(merchant, key, fingerprint(request))


def fingerprint(request: Request) -> str:
    """The same for the same request, however its JSON is spaced or its keys ordered."""
    body = request.get_json(silent=True)
    canonical = (json.dumps(body, sort_keys=True, separators=(",", ":"))
                 if body is not None else request.get_data(as_text=True))
    return hashlib.sha256(f"{request.method} {request.path}\n{canonical}".encode()).hexdigest()


def run(sessions: Callable[[], Session], claim: Claim | None, work: Work) -> Answer:
    """Do ``work`` in one transaction and answer with what it returns; with a key seen before,
    answer what it answered then instead, doing nothing."""
    with sessions() as session, session.begin():
        if claim is not None:
            serialize(session, "idempotency", claim.merchant, claim.key)
            stored = session.scalars(select(IdempotencyKey).where(
                IdempotencyKey.merchant == claim.merchant, IdempotencyKey.key == claim.key)
                ).one_or_none()
            if stored is not None:
                if stored.fingerprint != claim.fingerprint:
                    raise KeyReused(claim.key)
                return Answer(stored.status_code, stored.response, replayed=True)
        status, body = work(session)
        if claim is not None:
            session.add(IdempotencyKey(merchant=claim.merchant, key=claim.key,
                                       fingerprint=claim.fingerprint, status_code=status,
                                       response=body, created_at=datetime.now(UTC)))
        return Answer(status, body, replayed=False)


def forget_old(session: Session, now: datetime) -> int:
    """Delete keys older than ``KEEP``; returns how many."""
    result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - KEEP))
    # A DELETE's result is a CursorResult (rowcount), which Session.execute is not typed to say.
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
