"""Settings from the environment and the merchants file, validated once at start-up.

A merchants file (TOML) names each merchant: its policy pack, its mode (sandbox or live), its
Stripe webhook secrets (a list, for rotation) and API key, its PayPal credentials and webhook id,
and the bearer token of its admin API. Any secret may be written as ``"env:NAME"`` to read it from
the environment instead. Secrets are kept out of ``repr`` so that they never reach a log line.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from service.errors import ConfigError

DEFAULT_MERCHANTS_FILE = Path(__file__).with_name("merchants.default.toml")

STRIPE_API_BASE = "https://api.stripe.com"
PAYPAL_LIVE_API_BASE = "https://api-m.paypal.com"
PAYPAL_SANDBOX_API_BASE = "https://api-m.sandbox.paypal.com"
_PAYPAL_LIVE_HOSTS = {"api-m.paypal.com", "api.paypal.com"}
_PAYPAL_SANDBOX_HOSTS = {"api-m.sandbox.paypal.com", "api.sandbox.paypal.com"}
_LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


class Mode(StrEnum):
    SANDBOX = "sandbox"
    LIVE = "live"


class PayPalVerification(StrEnum):
    LOCAL = "local"  # RSA-SHA256 over PayPal's certificate, checked here
    API = "api"  # PayPal's verify-webhook-signature endpoint


@dataclass(frozen=True)
class StripeSettings:
    webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    api_key: str = field(default="", repr=False)
    api_base: str = STRIPE_API_BASE
    credit_to_customer_balance: bool = False


@dataclass(frozen=True)
class PayPalSettings:
    client_id: str = field(default="", repr=False)
    client_secret: str = field(default="", repr=False)
    webhook_id: str = ""
    api_base: str = PAYPAL_SANDBOX_API_BASE
    verification: PayPalVerification = PayPalVerification.LOCAL


@dataclass(frozen=True)
class Merchant:
    name: str
    display_name: str
    policy_pack: str
    mode: Mode
    admin_token: str = field(repr=False)
    stripe: StripeSettings
    paypal: PayPalSettings
    default_product_category: str | None = None  # what a request names when it names none
    # A credit approved in review is at most this share of what the decision concerns (the
    # payment's amount, else the order's or the overpayment's).
    review_credit_limit_percent: int = 100

    @property
    def livemode(self) -> bool:
        return self.mode is Mode.LIVE


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    redis_url: str | None  # None: start the embedded Redis under data_dir
    merchants: Mapping[str, Merchant]
    body_limit: int = 1024 * 1024
    stripe_tolerance: int = 300
    sweep_after_seconds: int = 120
    partitions: int = 8
    batch_size: int = 100
    drain_lock_seconds: int = 60
    retry_base_seconds: int = 10
    max_attempts: int = 10
    paypal_cert_timeout: float = 5.0
    db_busy_timeout: int = 30  # seconds a SQLite writer waits for the lock, then fails
    paypal_ca_file: Path | None = None  # None: the bundled PayPal issuing CAs
    queue_name: str = "gateway"
    metrics_token: str = field(default="", repr=False)  # empty: /metrics is open
    signature_failure_limit: int = 30  # failed checks per source per window; 0: no limit
    signature_failure_window: int = 60  # seconds
    trusted_proxies: int = 0  # proxies in front that append to X-Forwarded-For

    def merchant(self, name: str) -> Merchant | None:
        return self.merchants.get(name)


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the environment (``os.environ`` by default) and the merchants file."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("GATEWAY_DATA_DIR", "var")).resolve()
    merchants_file = Path(env.get("GATEWAY_MERCHANTS_FILE", DEFAULT_MERCHANTS_FILE))
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'gateway.db'}",
        "redis_url": env.get("REDIS_URL") or None,
        "merchants": load_merchants(merchants_file, env),
        "body_limit": _int(env, "GATEWAY_BODY_LIMIT", 1024 * 1024),
        "stripe_tolerance": _int(env, "GATEWAY_STRIPE_TOLERANCE", 300),
        "sweep_after_seconds": _int(env, "GATEWAY_SWEEP_AFTER_SECONDS", 120),
        "partitions": _int(env, "GATEWAY_PARTITIONS", 8),
        "batch_size": _int(env, "GATEWAY_BATCH_SIZE", 100),
        "drain_lock_seconds": _int(env, "GATEWAY_DRAIN_LOCK_SECONDS", 60),
        "retry_base_seconds": _int(env, "GATEWAY_RETRY_BASE_SECONDS", 10),
        "max_attempts": _int(env, "GATEWAY_MAX_ATTEMPTS", 10),
        "db_busy_timeout": _int(env, "GATEWAY_DB_BUSY_TIMEOUT", 30),
        "signature_failure_limit": _int(env, "GATEWAY_SIGNATURE_FAILURE_LIMIT", 30),
        "signature_failure_window": _int(env, "GATEWAY_SIGNATURE_FAILURE_WINDOW", 60),
        "trusted_proxies": _int(env, "GATEWAY_TRUSTED_PROXIES", 0),
    }
    values["metrics_token"] = env.get("GATEWAY_METRICS_TOKEN", "")
    if env.get("GATEWAY_PAYPAL_CA_FILE"):
        values["paypal_ca_file"] = Path(env["GATEWAY_PAYPAL_CA_FILE"])
    values.update(overrides)
    return Settings(**values)


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {raw!r}") from None


def load_merchants(path: Path, env: Mapping[str, str]) -> dict[str, Merchant]:
    """Parse and validate a merchants file; every problem is a ConfigError naming the key."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"merchants file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"merchants file {path} is not valid TOML: {exc}") from None
    table = data.get("merchants")
    if not isinstance(table, dict) or not table:
        raise ConfigError(f"{path}: no [merchants.NAME] tables")
    return {name: _merchant(name, body, env) for name, body in table.items()}


def _merchant(name: str, body: Mapping[str, Any], env: Mapping[str, str]) -> Merchant:
    where = f"merchants.{name}"
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{where}: a merchant name may hold letters, digits, - and _ only")
    try:
        mode = Mode(body.get("mode", "sandbox"))
    except ValueError:
        raise ConfigError(f"{where}.mode must be 'sandbox' or 'live'") from None
    stripe = _stripe(where, body.get("stripe", {}), env)
    paypal = _paypal(where, body.get("paypal", {}), env)
    _check_mode(where, mode, stripe, paypal)
    token = _secret(f"{where}.admin_token", body.get("admin_token", ""), env)
    if len(token) < 16:
        raise ConfigError(f"{where}.admin_token must be at least 16 characters")
    pack = body.get("policy_pack")
    if not isinstance(pack, str) or not pack:
        raise ConfigError(f"{where}.policy_pack is required")
    return Merchant(
        name=name,
        display_name=str(body.get("display_name", name)),
        policy_pack=pack,
        mode=mode,
        admin_token=token,
        stripe=stripe,
        paypal=paypal,
        default_product_category=body.get("default_product_category"),
        review_credit_limit_percent=_percent(f"{where}.review_credit_limit_percent",
                                             body.get("review_credit_limit_percent", 100)),
    )


def _percent(key: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
        raise ConfigError(f"{key} must be a whole number of per cent from 1 to 1000, "
                          f"got {value!r}")
    return value


def _stripe(where: str, body: Mapping[str, Any], env: Mapping[str, str]) -> StripeSettings:
    secrets = body.get("webhook_secrets", [])
    if not isinstance(secrets, list):
        raise ConfigError(f"{where}.stripe.webhook_secrets must be a list")
    resolved = tuple(
        _secret(f"{where}.stripe.webhook_secrets[{i}]", s, env) for i, s in enumerate(secrets)
    )
    return StripeSettings(
        webhook_secrets=tuple(s for s in resolved if s),
        api_key=_secret(f"{where}.stripe.api_key", body.get("api_key", ""), env),
        api_base=str(body.get("api_base", STRIPE_API_BASE)).rstrip("/"),
        credit_to_customer_balance=bool(body.get("credit_to_customer_balance", False)),
    )


def _paypal(where: str, body: Mapping[str, Any], env: Mapping[str, str]) -> PayPalSettings:
    try:
        verification = PayPalVerification(body.get("verification", "local"))
    except ValueError:
        raise ConfigError(f"{where}.paypal.verification must be 'local' or 'api'") from None
    return PayPalSettings(
        client_id=_secret(f"{where}.paypal.client_id", body.get("client_id", ""), env),
        client_secret=_secret(f"{where}.paypal.client_secret", body.get("client_secret", ""), env),
        webhook_id=_secret(f"{where}.paypal.webhook_id", body.get("webhook_id", ""), env),
        api_base=str(body.get("api_base", PAYPAL_SANDBOX_API_BASE)).rstrip("/"),
        verification=verification,
    )


def _secret(key: str, value: Any, env: Mapping[str, str]) -> str:
    """A literal, or ``env:NAME`` read from the environment (missing is an error naming both)."""
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    if value.startswith("env:"):
        var = value[4:]
        if var not in env:
            raise ConfigError(f"{key} names environment variable {var}, which is not set")
        return env[var]
    return value


def _check_mode(where: str, mode: Mode, stripe: StripeSettings, paypal: PayPalSettings) -> None:
    """A sandbox merchant refuses live keys and hosts; a live merchant refuses test ones."""
    key = stripe.api_key
    if mode is Mode.SANDBOX and key.startswith(("sk_live_", "rk_live_")):
        raise ConfigError(f"{where}: sandbox merchant has a live Stripe API key")
    if mode is Mode.LIVE and key and not key.startswith(("sk_live_", "rk_live_")):
        raise ConfigError(f"{where}: live merchant needs a live Stripe API key (sk_live_...)")
    host = urlsplit(paypal.api_base).hostname or ""
    if mode is Mode.SANDBOX and host in _PAYPAL_LIVE_HOSTS:
        raise ConfigError(f"{where}: sandbox merchant points PayPal at the live host {host}")
    if mode is Mode.LIVE and host not in _PAYPAL_LIVE_HOSTS:
        raise ConfigError(f"{where}: live merchant must use PayPal's live API, not {host}")
    stripe_host = urlsplit(stripe.api_base).hostname or ""
    if mode is Mode.LIVE and stripe_host != "api.stripe.com":
        raise ConfigError(f"{where}: live merchant must use api.stripe.com, not {stripe_host}")
    for base in (stripe.api_base, paypal.api_base):
        parts = urlsplit(base)
        if parts.scheme != "https" and parts.hostname not in _LOCAL_HOSTS:
            raise ConfigError(f"{where}: provider API base {base} must be https")
