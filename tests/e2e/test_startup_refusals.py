"""Processes that must not run refuse at start, with one line naming what to fix: a live
merchant on the host-local defaults or with a published test token, and serve, worker or
clock on a database that is not at the head revision (they never migrate it themselves)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.migrate import head_revision, upgrade
from service.config import shipped_tokens

ROOT = Path(__file__).resolve().parents[2]
LIVE = """
[merchants.shop]
policy_pack = "theopenhost"
mode = "live"
admin_token = "{token}"
[merchants.shop.stripe]
webhook_secrets = ["whsec_live_shop"]
api_key = "sk_live_shop"
[merchants.shop.paypal]
webhook_id = "WH-SHOP"
api_base = "https://api-m.paypal.com"
"""
NOWHERE = "redis://127.0.0.1:1/0"  # nothing listens: a refusal must come before any connection


def _gateway(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m cli.main ARGS`` with only the given settings (none inherited)."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("GATEWAY_") and k not in ("DATABASE_URL", "REDIS_URL", "PORT")}
    base.update({"GATEWAY_DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "WARNING", **env})
    return subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=base,
                          capture_output=True, text=True, timeout=60, check=False)


def _refused(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit status 2 and a single line on standard error holding every expected text."""
    err = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "\n" not in err, result.stderr
    assert err.startswith("gateway: "), err
    for text in expected:
        assert text in err, (text, err)
    return err


def _live_merchants(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "merchants.toml"
    path.write_text(LIVE.format(token=token))
    return path


def test_serve_with_a_live_merchant_and_no_database_url_refuses(tmp_path):
    """The host-local SQLite default would give each host a ledger of its own."""
    merchants = _live_merchants(tmp_path, "a-secret-token-of-the-shops-own")
    result = _gateway(["serve"], tmp_path, GATEWAY_MERCHANTS_FILE=str(merchants),
                      REDIS_URL=NOWHERE)
    _refused(result, "DATABASE_URL is not set", "merchant shop is live", "PostgreSQL")
    assert not (tmp_path / "data" / "gateway.db").exists()  # nothing was created on the way


def test_serve_with_a_live_merchant_and_no_redis_url_refuses(tmp_path):
    merchants = _live_merchants(tmp_path, "a-secret-token-of-the-shops-own")
    result = _gateway(["serve"], tmp_path, GATEWAY_MERCHANTS_FILE=str(merchants),
                      DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    _refused(result, "REDIS_URL is not set", "merchant shop is live")
    assert not (tmp_path / "data" / "redis").exists()  # no embedded Redis was started


@pytest.mark.parametrize("command", [["serve"], ["worker"], ["db", "upgrade"]])
def test_a_live_merchant_with_a_shipped_test_token_refuses(tmp_path, command):
    """Even with PostgreSQL and Redis named: the shipped tokens are published."""
    token = min(shipped_tokens())
    merchants = _live_merchants(tmp_path, "env:SHOP_ADMIN_TOKEN")
    result = _gateway(command, tmp_path, GATEWAY_MERCHANTS_FILE=str(merchants),
                      SHOP_ADMIN_TOKEN=token, REDIS_URL=NOWHERE,
                      DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    err = _refused(result, "merchants.shop.admin_token is a published test token")
    assert token not in err


@pytest.mark.parametrize("command", [["worker"], ["serve"], ["clock", "--once"]])
def test_a_process_on_an_unmigrated_sqlite_database_refuses(tmp_path, command):
    """serve, worker and clock never migrate: they name the database, its state, the head
    revision and the command that fixes it."""
    db = tmp_path / "unmigrated.db"
    result = _gateway(command, tmp_path, DATABASE_URL=f"sqlite:///{db}", REDIS_URL=NOWHERE)
    _refused(result, str(db), "has no schema (never migrated)",
             f"needs revision {head_revision(f'sqlite:///{db}')}", "`gateway db upgrade`")
    assert not db.exists()  # the check did not create the file


def test_a_worker_on_a_database_behind_the_head_refuses_naming_both_revisions(tmp_path):
    url = f"sqlite:///{tmp_path / 'behind.db'}"
    upgrade(url, "0008")
    result = _gateway(["worker"], tmp_path, DATABASE_URL=url, REDIS_URL=NOWHERE)
    _refused(result, "is at revision 0008", f"needs revision {head_revision(url)}",
             "`gateway db upgrade`")


def test_after_db_upgrade_the_same_process_starts(tmp_path):
    """The release step, then the process: `clock --once` runs and exits 0."""
    url = f"sqlite:///{tmp_path / 'released.db'}"
    upgraded = _gateway(["db", "upgrade"], tmp_path, DATABASE_URL=url, REDIS_URL=NOWHERE)
    assert upgraded.returncode == 0, upgraded.stderr
    data = tmp_path / "data"
    try:
        clock = _gateway(["clock", "--once"], tmp_path, DATABASE_URL=url, LOG_FORMAT="text")
        assert clock.returncode == 0, clock.stderr
        assert "gateway db upgrade" not in clock.stderr
    finally:
        from service.embedded_redis import stop_embedded_redis

        stop_embedded_redis(data)


def test_the_procfile_web_line_refuses_an_unmigrated_database(tmp_path):
    """gunicorn as the Procfile runs it (not through `gateway serve`) checks the schema too:
    it exits 2 naming `gateway db upgrade`, before any worker starts."""
    from tests.e2e.conftest import procfile_line
    from tests.support.outages import free_port

    db = tmp_path / "unmigrated.db"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GATEWAY_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"GATEWAY_DATA_DIR": str(tmp_path / "data"), "DATABASE_URL": f"sqlite:///{db}",
                "REDIS_URL": NOWHERE, "PORT": str(free_port()),
                "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")})
    result = subprocess.run(procfile_line("web"), shell=True, cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "`gateway db upgrade`" in result.stderr and "Traceback" not in result.stderr
    assert not db.exists()


@pytest.fixture
def loose_redis(tmp_path):
    """A Redis that keeps nothing on disk: it may lose what the Redis inbox acknowledged."""
    from tests.support.outages import RedisServer

    server = RedisServer(tmp_path / "loose-redis", persistent=False)
    server.start()
    yield server.url
    server.stop()


def test_a_worker_for_a_live_merchant_refuses_a_redis_that_may_lose_events(tmp_path,
                                                                           loose_redis):
    """With the Redis inbox, Redis holds acknowledged events until a drain commits them: a
    live merchant needs appendonly yes and appendfsync always, and the refusal says so."""
    merchants = _live_merchants(tmp_path, "a-secret-token-of-the-shops-own")
    result = _gateway(["worker"], tmp_path, GATEWAY_MERCHANTS_FILE=str(merchants),
                      REDIS_URL=loose_redis, DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    _refused(result, "merchant shop is live", "appendonly is 'no', not 'yes'",
             "appendfsync is 'everysec', not 'always'")


def test_the_procfile_web_line_refuses_a_redis_that_may_lose_events(tmp_path, loose_redis):
    """gunicorn as the Procfile runs it checks Redis's persistence before any worker starts."""
    from tests.e2e.conftest import procfile_line
    from tests.support.outages import free_port

    merchants = _live_merchants(tmp_path, "a-secret-token-of-the-shops-own")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("GATEWAY_") and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"GATEWAY_DATA_DIR": str(tmp_path / "data"), "GATEWAY_MERCHANTS_FILE":
                str(merchants), "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
                "REDIS_URL": loose_redis, "PORT": str(free_port()),
                "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")})
    result = subprocess.run(procfile_line("web"), shell=True, cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "merchant shop is live" in result.stderr and "appendfsync" in result.stderr
    assert "Traceback" not in result.stderr
