"""The audit log: every state change, by whom, on what. Written in the transaction it describes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from ledger.models import AuditEntry


def record(session: Session, *, merchant: str, actor: str, action: str, subject: str,
           at: datetime | None = None, **detail: Any) -> None:
    """Append one entry; the caller's commit makes it durable together with the change."""
    session.add(AuditEntry(at=at or datetime.now(UTC), merchant=merchant, actor=actor,
                           action=action, subject=subject, detail=detail))
