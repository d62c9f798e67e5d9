"""Settings from the environment and the merchants file, validated once at start-up.

A merchants file (TOML) names each merchant: its policy pack, its mode (sandbox or live), its
Stripe webhook secrets (a list, for rotation) and API key, its PayPal credentials and webhook id,
and the bearer token of its admin API. Any secret may be written as ``"env:NAME"`` to read it from
the environment instead. Secrets are kept out of ``repr`` so that they never reach a log line.

Every numeric environment variable is read through one table, ``NUMERIC_SETTINGS``: a value that
is not a number, or is outside its range, is a ConfigError naming the variable, the value and the
range. A ``live`` merchant needs an explicit PostgreSQL ``DATABASE_URL`` and an explicit
``REDIS_URL`` (a host-local SQLite file and an embedded Redis are one host's ledger and queue),
and an admin token of its own, never one of the published test tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from policy.timing import UnknownZone, zone
from service.errors import ConfigError

DEFAULT_MERCHANTS_FILE = Path(__file__).with_name("merchants.default.toml")

STRIPE_API_BASE = "https://api.stripe.com"
# The one Stripe API version of the gateway: the adapters send it on every call (Stripe-Version),
# so a new stripe-python, whose default moves with each major, cannot change the shapes Stripe
# answers with; the sample events carry it as their api_version. Webhook endpoints should be
# created at this version too, so that deliveries have the same shapes.
STRIPE_API_VERSION = "2024-06-20"
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
    # Account credit for a Stripe customer is a negative customer balance at Stripe, which
    # Stripe applies to the next invoice: faithful to "applied as account credit" (003 §1.12).
    credit_to_customer_balance: bool = True


@dataclass(frozen=True)
class PayPalSettings:
    client_id: str = field(default="", repr=False)
    client_secret: str = field(default="", repr=False)
    webhook_id: str = ""
    api_base: str = PAYPAL_SANDBOX_API_BASE
    verification: PayPalVerification = PayPalVerification.LOCAL


# A process-wide key for admin token digests: the digests are compared, never the tokens, and a
# digest is worthless outside the process that made it.
_TOKEN_DIGEST_KEY = secrets.token_bytes(32)
# The admin tokens anyone can read in the shipped merchants file start with this.
TEST_TOKEN_PREFIX = "test-admin-"


def check_ca_file(path: Path) -> None:
    """``GATEWAY_PAYPAL_CA_FILE`` must be a readable file of PEM certificates: checked when the
    web server starts (``gateway.gunicorn_conf.on_starting``), not when settings are read (the
    worker, the clock and the release step never verify PayPal, and a demo writes its CA after
    reading them)."""
    from cryptography import x509

    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"GATEWAY_PAYPAL_CA_FILE: cannot read {path}: "
                          f"{exc.strerror or exc}") from None
    try:
        x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ConfigError(f"GATEWAY_PAYPAL_CA_FILE: {path} holds no PEM certificate") from None


def token_digest(token: str) -> bytes:
    """The HMAC-SHA256 of an admin token under this process's key: 32 bytes whatever the token,
    so comparing two digests takes the same time whatever was presented."""
    return hmac.new(_TOKEN_DIGEST_KEY, token.encode("utf-8", "surrogatepass"),
                    hashlib.sha256).digest()


@dataclass(frozen=True)
class Merchant:
    name: str
    display_name: str
    policy_pack: str
    mode: Mode
    # Kept (out of repr) for the clients that build request headers from settings: the demo's
    # flows and the tests. The admin API compares ``admin_token_digest`` only.
    admin_token: str = field(repr=False)
    stripe: StripeSettings
    paypal: PayPalSettings
    default_product_category: str | None = None  # what a request names when it names none
    # A credit approved in review is at most this share of what the decision concerns (the
    # payment's amount, else the order's or the overpayment's).
    review_credit_limit_percent: int = 100
    # The merchant's calendar (IANA name): calendar-day windows, the day-of-month deadline and
    # date-only due dates are read in it. Every Case the gateway builds carries it.
    time_zone: str = "UTC"
    admin_token_digest: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "admin_token_digest", token_digest(self.admin_token))

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
    paypal_tolerance: int = 300  # seconds a PayPal transmission time may be off, either way
    sweep_after_seconds: int = 120
    partitions: int = 8
    batch_size: int = 100
    drain_lock_seconds: int = 60
    # GATEWAY_INBOX: where a delivery is recorded before it is acknowledged: "redis" (a stream,
    # on a Redis that fsyncs every write; the drain commits it to the inbox table) or
    # "database" (the inbox table, committed on the request path).
    inbox: str = "redis"
    inbox_dedupe_seconds: int = 86_400  # how long the Redis inbox answers "duplicate" by itself
    retry_base_seconds: int = 10
    max_attempts: int = 10
    paypal_cert_timeout: float = 5.0
    db_busy_timeout: int = 30  # seconds a SQLite writer waits for the lock, then fails
    web_db_wait: float = 3.0  # at most this in a web process (a webhook answers 503 by then)
    paypal_ca_file: Path | None = None  # None: the bundled PayPal issuing CAs
    queue_name: str = "gateway"
    metrics_token: str = field(default="", repr=False)  # empty: /metrics is open
    signature_failure_limit: int = 30  # failed checks per source per window; 0: no limit
    signature_failure_window: int = 60  # seconds
    trusted_proxies: int = 0  # proxies in front that append to X-Forwarded-For
    metrics_port: int | None = None  # a worker's or clock's own /metrics port
    port: int | None = None  # PORT: the web server's port (`gateway serve`, the Procfile)
    # GATEWAY_PUBLIC_URL: where people reach the gateway (https://gateway.example.com), so that
    # a report's rows can link to their events; None: reports show event ids without links.
    public_url: str | None = None

    def merchant(self, name: str) -> Merchant | None:
        return self.merchants.get(name)


@dataclass(frozen=True)
class Numeric:
    """A numeric environment variable: the Settings field it sets and the values allowed."""

    variable: str
    field: str
    kind: type  # int (digits only) or float
    low: int | float
    high: int | float
    above_low: bool = False  # ``low`` itself is refused (a timeout above 0)
    zero: str = ""  # what 0 means, when it is allowed and means something special
    optional: bool = False  # unset (None) is allowed: the feature is off

    def allowed(self) -> str:
        what = "a whole number" if self.kind is int else "a number"
        if self.above_low:
            return f"{what} above {_num(self.low)} and at most {_num(self.high)}"
        low = f"{_num(self.low)} ({self.zero})" if self.zero and self.low == 0 else _num(self.low)
        return f"{what} from {low} to {_num(self.high)}"

    def refuse(self, value: Any) -> ConfigError:
        return ConfigError(f"{self.variable} must be {self.allowed()}, got {value!r}")

    def parse(self, raw: str) -> int | float:
        """The value of ``raw`` (from the environment), or a ConfigError naming the variable."""
        text = raw.strip()
        pattern = r"[+-]?[0-9]+" if self.kind is int else r"[+-]?[0-9]+(\.[0-9]+)?"
        if not re.fullmatch(pattern, text, re.ASCII):
            raise self.refuse(raw)
        value = int(text) if self.kind is int else float(text)
        self.check(value, raw)
        return value

    def check(self, value: Any, shown: Any = None) -> None:
        """Refuse ``value`` (of the field) unless it has the right type and is in range."""
        if value is None and self.optional:
            return
        shown = value if shown is None else shown
        if isinstance(value, bool) or not isinstance(value, (int, float) if self.kind is float
                                                        else int):
            raise self.refuse(shown)
        below = value <= self.low if self.above_low else value < self.low
        if below or value > self.high:
            raise self.refuse(shown)


# Every numeric setting, its type and its range, in one place (README: Configuration). A value
# of the wrong type or out of range is refused at start-up, naming the variable.
NUMERIC_SETTINGS: tuple[Numeric, ...] = (
    Numeric("GATEWAY_BODY_LIMIT", "body_limit", int, 1024, 16 * 1024 * 1024),
    Numeric("GATEWAY_STRIPE_TOLERANCE", "stripe_tolerance", int, 1, 3600),
    Numeric("GATEWAY_PAYPAL_TOLERANCE", "paypal_tolerance", int, 1, 3600),
    Numeric("GATEWAY_SWEEP_AFTER_SECONDS", "sweep_after_seconds", int, 0, 86_400,
            zero="at once"),
    Numeric("GATEWAY_PARTITIONS", "partitions", int, 1, 1024),
    Numeric("GATEWAY_BATCH_SIZE", "batch_size", int, 1, 10_000),
    Numeric("GATEWAY_DRAIN_LOCK_SECONDS", "drain_lock_seconds", int, 1, 3600),
    Numeric("GATEWAY_INBOX_DEDUPE_SECONDS", "inbox_dedupe_seconds", int, 60, 30 * 86_400),
    Numeric("GATEWAY_RETRY_BASE_SECONDS", "retry_base_seconds", int, 1, 3600),
    # base x 2**(attempts - 1) must stay a representable date: 25 attempts at the largest base
    # is some 1,900 years; more would overflow the retry time of an action.
    Numeric("GATEWAY_MAX_ATTEMPTS", "max_attempts", int, 1, 25),
    Numeric("GATEWAY_DB_BUSY_TIMEOUT", "db_busy_timeout", int, 1, 600),
    Numeric("GATEWAY_WEB_DB_WAIT", "web_db_wait", float, 0, 25, above_low=True),
    Numeric("GATEWAY_PAYPAL_CERT_TIMEOUT", "paypal_cert_timeout", float, 0, 60, above_low=True),
    Numeric("GATEWAY_SIGNATURE_FAILURE_LIMIT", "signature_failure_limit", int, 0, 1_000_000,
            zero="no limit"),
    Numeric("GATEWAY_SIGNATURE_FAILURE_WINDOW", "signature_failure_window", int, 1, 86_400),
    Numeric("GATEWAY_TRUSTED_PROXIES", "trusted_proxies", int, 0, 16, zero="none"),
    Numeric("GATEWAY_METRICS_PORT", "metrics_port", int, 1, 65_535, optional=True),
    Numeric("PORT", "port", int, 1, 65_535, optional=True),
)


INBOXES = ("redis", "database")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Read the environment (``os.environ`` by default) and the merchants file.

    ``overrides`` (for tests and tools) replace fields; numeric ones are held to the same ranges
    as the environment's, and a live merchant's requirements apply to them too."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("GATEWAY_DATA_DIR", "var")).resolve()
    merchants_file = Path(env.get("GATEWAY_MERCHANTS_FILE", DEFAULT_MERCHANTS_FILE))
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": env.get("DATABASE_URL") or f"sqlite:///{data_dir / 'gateway.db'}",
        "redis_url": env.get("REDIS_URL") or None,
        "merchants": load_merchants(merchants_file, env),
    }
    for numeric in NUMERIC_SETTINGS:  # unset or empty: the field's default
        raw = env.get(numeric.variable)
        if raw is not None and raw.strip() != "":
            values[numeric.field] = numeric.parse(raw)
    values["metrics_token"] = env.get("GATEWAY_METRICS_TOKEN", "")
    if env.get("GATEWAY_INBOX", "").strip():
        values["inbox"] = env["GATEWAY_INBOX"].strip()
    if env.get("GATEWAY_PAYPAL_CA_FILE"):
        values["paypal_ca_file"] = Path(env["GATEWAY_PAYPAL_CA_FILE"])
    values["public_url"] = public_url(env.get("GATEWAY_PUBLIC_URL", ""))
    values.update(overrides)
    settings = Settings(**values)
    for numeric in NUMERIC_SETTINGS:
        numeric.check(getattr(settings, numeric.field))
    if settings.inbox not in INBOXES:
        raise ConfigError(f"GATEWAY_INBOX must be one of {', '.join(INBOXES)}, "
                          f"got {settings.inbox!r}")
    _check_live(settings,
                database_given=bool(env.get("DATABASE_URL")) or "database_url" in overrides,
                redis_given=bool(env.get("REDIS_URL")) or bool(overrides.get("redis_url")))
    return settings


def public_url(raw: str, name: str = "GATEWAY_PUBLIC_URL") -> str | None:
    """The gateway's public address without a trailing slash, None when empty; anything but
    an http(s) address with a host (no query or fragment) is a ConfigError naming ``name``."""
    text = raw.strip().rstrip("/")
    if not text:
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
            or parts.query or parts.fragment or "{" in text or "}" in text
            or any(c.isspace() for c in text)):
        raise ConfigError(f"{name} must be an http(s) address such as "
                          f"https://gateway.example.com, got {raw!r}")
    return text


def _check_live(settings: Settings, database_given: bool, redis_given: bool) -> None:
    """A live merchant's ledger and queue are shared by every host: an explicit PostgreSQL
    ``DATABASE_URL`` and an explicit ``REDIS_URL``, never the host-local defaults."""
    live = sorted(name for name, merchant in settings.merchants.items() if merchant.livemode)
    if not live:
        return
    who = (f"merchant {live[0]} is live" if len(live) == 1
           else f"merchants {', '.join(live)} are live")
    if not database_given:
        raise ConfigError(f"DATABASE_URL is not set and {who}: a live merchant needs an explicit "
                          "PostgreSQL DATABASE_URL (postgresql://...), not the SQLite file under "
                          "GATEWAY_DATA_DIR that each host would keep for itself")
    scheme = urlsplit(settings.database_url).scheme
    if scheme.split("+", 1)[0] != "postgresql":
        raise ConfigError(f"DATABASE_URL must be a PostgreSQL URL (postgresql://...) when {who}; "
                          f"it is a {scheme or 'schemeless'} URL")
    if not redis_given or not settings.redis_url:
        raise ConfigError(f"REDIS_URL is not set and {who}: a live merchant needs an explicit "
                          "REDIS_URL (redis://...), not the embedded Redis each host would start "
                          "for itself")


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
    if mode is Mode.LIVE and (token.startswith(TEST_TOKEN_PREFIX) or token in shipped_tokens()):
        raise ConfigError(f"{where}.admin_token is a published test token (the shipped merchants "
                          f"file's, or {TEST_TOKEN_PREFIX}...): a live merchant needs a secret "
                          f"token of its own, say \"env:{name.upper().replace('-', '_')}"
                          f"_ADMIN_TOKEN\"")
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
        time_zone=_time_zone(f"{where}.time_zone", body.get("time_zone", "UTC")),
    )


def _time_zone(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be an IANA time zone name such as 'Europe/London'")
    try:
        zone(value)
    except UnknownZone as exc:
        raise ConfigError(f"{key}: {exc}") from None
    return value


@cache
def shipped_tokens() -> frozenset[str]:
    """The admin tokens written in the shipped merchants file: published, so test tokens."""
    try:
        data = tomllib.loads(DEFAULT_MERCHANTS_FILE.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return frozenset()
    merchants = data.get("merchants")
    if not isinstance(merchants, dict):
        return frozenset()
    return frozenset(body["admin_token"] for body in merchants.values()
                     if isinstance(body, dict) and isinstance(body.get("admin_token"), str)
                     and not body["admin_token"].startswith("env:"))


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
        credit_to_customer_balance=bool(body.get("credit_to_customer_balance", True)),
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
