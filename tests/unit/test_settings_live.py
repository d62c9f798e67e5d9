"""A live merchant needs shared stores and a token of its own: an explicit PostgreSQL
DATABASE_URL, an explicit REDIS_URL, and never one of the published test admin tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.config import DEFAULT_MERCHANTS_FILE, load_merchants, load_settings, shipped_tokens
from service.errors import ConfigError

LIVE = """
[merchants.shop]
policy_pack = "theopenhost"
mode = "{mode}"
admin_token = "{token}"
[merchants.shop.stripe]
webhook_secrets = ["whsec_live_shop"]
api_key = "{key}"
[merchants.shop.paypal]
webhook_id = "WH-SHOP"
api_base = "{paypal}"
"""
OWN_TOKEN = "a-secret-token-of-the-shops-own"
PG = "postgresql://gateway@db.internal:5432/gateway"
REDIS = "redis://queue.internal:6379/0"


def _file(tmp_path: Path, mode: str = "live", token: str = OWN_TOKEN) -> Path:
    live = mode == "live"
    path = tmp_path / "merchants.toml"
    path.write_text(LIVE.format(
        mode=mode, token=token, key="sk_live_shop" if live else "sk_test_shop",
        paypal="https://api-m.paypal.com" if live else "https://api-m.sandbox.paypal.com"))
    return path


def _env(path: Path, **extra: str) -> dict[str, str]:
    return {"GATEWAY_MERCHANTS_FILE": str(path), "GATEWAY_DATA_DIR": str(path.parent), **extra}


def test_a_live_merchant_with_postgresql_and_redis_loads(tmp_path):
    settings = load_settings(_env(_file(tmp_path), DATABASE_URL=PG, REDIS_URL=REDIS))
    assert settings.merchants["shop"].livemode
    assert settings.database_url == PG and settings.redis_url == REDIS


def test_a_live_merchant_without_database_url_names_the_setting(tmp_path):
    """No host-local SQLite file for live money: two hosts would keep two ledgers."""
    with pytest.raises(ConfigError, match="DATABASE_URL is not set and merchant shop is live"):
        load_settings(_env(_file(tmp_path), REDIS_URL=REDIS))
    with pytest.raises(ConfigError, match="DATABASE_URL is not set"):
        load_settings(_env(_file(tmp_path), DATABASE_URL="", REDIS_URL=REDIS))


def test_a_live_merchant_refuses_an_explicit_sqlite_database(tmp_path):
    sqlite = f"sqlite:///{tmp_path / 'ledger.db'}"
    with pytest.raises(ConfigError, match=r"DATABASE_URL must be a PostgreSQL URL .* sqlite URL"):
        load_settings(_env(_file(tmp_path), DATABASE_URL=sqlite, REDIS_URL=REDIS))
    assert load_settings(_env(_file(tmp_path), DATABASE_URL=PG.replace(
        "postgresql:", "postgresql+psycopg:"), REDIS_URL=REDIS)).merchants["shop"].livemode


def test_a_live_merchant_without_redis_url_names_the_setting(tmp_path):
    """No embedded Redis for live: each host would start a queue of its own."""
    with pytest.raises(ConfigError, match="REDIS_URL is not set and merchant shop is live"):
        load_settings(_env(_file(tmp_path), DATABASE_URL=PG))


def test_sandbox_merchants_keep_the_embedded_defaults(tmp_path):
    settings = load_settings(_env(_file(tmp_path, mode="sandbox")))
    assert settings.database_url.startswith("sqlite:///") and settings.redis_url is None


@pytest.mark.parametrize("token", sorted(shipped_tokens()) + ["test-admin-anything-at-all"])
def test_a_live_merchant_refuses_the_published_test_tokens(tmp_path, token):
    """Every admin token of the shipped merchants file, and any test-admin- token, in any
    environment: the error names the key, never the token."""
    with pytest.raises(ConfigError, match=r"merchants\.shop\.admin_token is a published test "
                                          r"token") as caught:
        load_merchants(_file(tmp_path, token=token), {})
    assert token not in str(caught.value)


def test_a_shipped_token_given_through_the_environment_is_refused_too(tmp_path):
    token = min(shipped_tokens())
    with pytest.raises(ConfigError, match="published test token"):
        load_merchants(_file(tmp_path, token="env:SHOP_ADMIN_TOKEN"), {"SHOP_ADMIN_TOKEN": token})


def test_a_sandbox_merchant_may_keep_a_test_token(tmp_path):
    merchant = load_merchants(_file(tmp_path, mode="sandbox", token="test-admin-shop-0000"), {})
    assert merchant["shop"].admin_token == "test-admin-shop-0000"


def test_the_shipped_tokens_are_the_default_files():
    """What counts as published is read from the file that publishes it."""
    defaults = load_merchants(DEFAULT_MERCHANTS_FILE, {})
    assert shipped_tokens() == {m.admin_token for m in defaults.values()}
    assert len(shipped_tokens()) == 4


def test_a_live_admin_token_can_come_from_the_environment(tmp_path):
    """``admin_token = "env:NAME"``: the token is the variable's value; unset is an error."""
    path = _file(tmp_path, token="env:SHOP_ADMIN_TOKEN")
    merchant = load_merchants(path, {"SHOP_ADMIN_TOKEN": OWN_TOKEN})["shop"]
    assert merchant.admin_token == OWN_TOKEN
    with pytest.raises(ConfigError, match="admin_token names environment variable "
                                          "SHOP_ADMIN_TOKEN, which is not set"):
        load_merchants(path, {})
