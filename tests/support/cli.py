"""Running the `gateway` command in-process against a test's stores."""

from __future__ import annotations

import pytest

from service.bootstrap import Container


def use_container_env(monkeypatch: pytest.MonkeyPatch, container: Container) -> None:
    """Point the command's environment at ``container``'s data directory, database and Redis."""
    s = container.settings
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(s.data_dir))
    monkeypatch.setenv("DATABASE_URL", s.database_url)
    monkeypatch.setenv("REDIS_URL", s.redis_url or "")
