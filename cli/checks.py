"""What a command checks before it starts work, so that a mistake costs a line, not a run:
the merchant is configured, the period is not empty, input files are there to read, the output
can be written, and the ledger a command reads exists and is at the code's revision (a command
that only reads the ledger never creates one: it would be empty, in the wrong place)."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from cli.errors import CliError

if TYPE_CHECKING:
    from service.config import Merchant, Settings


def merchant(settings: Settings, name: str) -> Merchant:
    """The configured merchant ``name``; else an error listing the configured names."""
    found = settings.merchant(name)
    if found is None:
        names = ", ".join(sorted(settings.merchants)) or "none"
        raise CliError(f"unknown merchant {name!r}; the merchants file "
                       f"(GATEWAY_MERCHANTS_FILE) configures: {names}")
    return found


def period(start: date, end: date) -> None:
    """``--to`` (exclusive) must come after ``--from``."""
    if end <= start:
        raise CliError(f"--to {end} must be after --from {start} (--to is exclusive: "
                       f"--from 2026-10-01 --to 2026-11-01 is October)")


def input_file(path: Path, option: str) -> Path:
    """``path``, if it is a file this process can read."""
    if not path.exists():
        raise CliError(f"{option} {path}: no such file")
    if not path.is_file():
        raise CliError(f"{option} {path}: not a file")
    if not os.access(path, os.R_OK):
        raise CliError(f"{option} {path}: not readable (permission denied)")
    return path


def output_file(path: Path, option: str) -> Path:
    """``path``, if a file can be written there: its directory exists and is writable, and it
    is not itself a directory. Checked before the work, not after it."""
    if path.is_dir():
        raise CliError(f"{option} {path}: is a directory; name a file")
    parent = path.parent
    if not parent.is_dir():
        raise CliError(f"{option} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists()
                                                      and not os.access(path, os.W_OK)):
        raise CliError(f"{option} {path}: cannot be written (permission denied)")
    return path


def ledger_ready(settings: Settings) -> None:
    """Return if the ledger exists and is at the head revision; else a one-line error naming
    where it was looked for and how to fix it. Never creates a database file or directory."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from ledger.migrate import DatabaseNotAtHead, current_revision, require_head

    url = settings.database_url
    where = make_url(url).render_as_string(hide_password=True)
    try:
        if current_revision(url) is None:
            raise CliError(_no_ledger(settings, where))
        require_head(url)
    except DatabaseNotAtHead as exc:
        raise CliError(str(exc)) from None
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        raise CliError(f"the database {where} cannot be read: {reason}") from None


def _no_ledger(settings: Settings, where: str) -> str:
    default = f"sqlite:///{settings.data_dir / 'gateway.db'}"
    if settings.database_url == default:
        return (f"no ledger in the data directory {settings.data_dir} (GATEWAY_DATA_DIR, "
                f"default ./var): run this where the gateway runs, or set GATEWAY_DATA_DIR or "
                f"DATABASE_URL to its ledger; `gateway db upgrade` creates a new one")
    return (f"the database {where} has no ledger (never migrated): check DATABASE_URL, or "
            f"create the ledger with `gateway db upgrade`")
