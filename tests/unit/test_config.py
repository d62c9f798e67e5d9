"""The merchants file: validated at start-up, with errors that name the key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.config import (
    DEFAULT_MERCHANTS_FILE,
    Mode,
    check_ca_file,
    load_merchants,
    load_settings,
)
from service.errors import ConfigError

BASE = """
[merchants.m]
policy_pack = "theopenhost"
mode = "{mode}"
admin_token = "a-long-enough-admin-token"
[merchants.m.stripe]
webhook_secrets = ["whsec_1", "env:ROTATED_SECRET"]
api_key = "{key}"
[merchants.m.paypal]
webhook_id = "WH-1"
api_base = "{paypal}"
"""


def _load(tmp_path: Path, env: dict[str, str] | None = None, **fields: str):
    values = {"mode": "sandbox", "key": "sk_test_x", "paypal": "https://api-m.sandbox.paypal.com"}
    path = tmp_path / "merchants.toml"
    path.write_text(BASE.format(**{**values, **fields}))
    return load_merchants(path, {"ROTATED_SECRET": "whsec_2"} if env is None else env)


def test_the_default_file_has_the_four_seed_merchants_in_sandbox():
    """The shipped file configures the seed merchants, all in sandbox mode."""
    merchants = load_merchants(DEFAULT_MERCHANTS_FILE, {})
    assert set(merchants) == {"oneclick", "digitalcare", "cloudbehind", "theopenhost"}
    assert all(m.mode is Mode.SANDBOX for m in merchants.values())


def test_secrets_can_come_from_the_environment(tmp_path):
    """'env:NAME' reads the secret from the environment; every secret is kept for rotation."""
    merchant = _load(tmp_path)["m"]
    assert merchant.stripe.webhook_secrets == ("whsec_1", "whsec_2")


def test_a_missing_environment_secret_names_the_key_and_the_variable(tmp_path):
    """An 'env:' secret whose variable is unset is an error naming both."""
    with pytest.raises(ConfigError, match=r"webhook_secrets\[1\].*ROTATED_SECRET"):
        _load(tmp_path, env={})


def test_a_sandbox_merchant_refuses_a_live_stripe_key(tmp_path):
    """sk_live_ keys are refused for a sandbox merchant at start-up."""
    with pytest.raises(ConfigError, match="sandbox merchant has a live Stripe API key"):
        _load(tmp_path, key="sk_live_abc")


def test_a_sandbox_merchant_refuses_paypals_live_host(tmp_path):
    """A sandbox merchant may not point PayPal at the live API."""
    with pytest.raises(ConfigError, match="live host"):
        _load(tmp_path, paypal="https://api-m.paypal.com")


def test_a_live_merchant_refuses_test_keys_and_the_sandbox_host(tmp_path):
    """A live merchant needs live credentials and PayPal's live API."""
    with pytest.raises(ConfigError, match="needs a live Stripe API key"):
        _load(tmp_path, mode="live", key="sk_test_abc", paypal="https://api-m.paypal.com")
    with pytest.raises(ConfigError, match="must use PayPal's live API"):
        _load(tmp_path, mode="live", key="sk_live_abc")


def test_secrets_never_appear_in_the_repr(tmp_path):
    """Logging a merchant or settings object does not leak its secrets."""
    merchant = _load(tmp_path)["m"]
    assert "whsec_" not in repr(merchant) and "sk_test" not in repr(merchant)
    assert "a-long-enough-admin-token" not in repr(merchant)


def test_a_bad_number_in_the_environment_names_the_variable():
    """Settings from the environment are checked too."""
    with pytest.raises(ConfigError, match="GATEWAY_BODY_LIMIT"):
        load_settings({"GATEWAY_BODY_LIMIT": "lots"})


@pytest.mark.parametrize(("line", "message"), [
    ('time_zone = "Mars/Olympus"', "merchants.m.time_zone: 'Mars/Olympus' is not an IANA"),
    ('time_zone = "../../etc/passwd"', "merchants.m.time_zone: '../../etc/passwd' is not an"),
    ("time_zone = 10", "merchants.m.time_zone must be an IANA time zone name"),
])
def test_a_merchant_time_zone_must_be_an_iana_name(tmp_path, line, message):
    path = tmp_path / "merchants.toml"
    text = BASE.format(mode="sandbox", key="sk_test_x", paypal="https://api-m.sandbox.paypal.com")
    path.write_text(text.replace('admin_token = "a-long-enough-admin-token"',
                                 f'admin_token = "a-long-enough-admin-token"\n{line}'))
    with pytest.raises(ConfigError) as err:
        load_merchants(path, {"ROTATED_SECRET": "whsec_2"})
    assert message in str(err.value)


def test_the_shipped_merchants_name_their_calendar():
    merchants = load_merchants(DEFAULT_MERCHANTS_FILE, {})
    assert merchants["oneclick"].time_zone == "America/New_York"
    assert {m.time_zone for n, m in merchants.items() if n != "oneclick"} == {"UTC"}


@pytest.mark.parametrize(("content", "message"), [
    (None, r"GATEWAY_PAYPAL_CA_FILE: cannot read .*ca\.pem"),
    (b"", r"GATEWAY_PAYPAL_CA_FILE: .*ca\.pem holds no PEM certificate"),
    (b"not a certificate\n", r"GATEWAY_PAYPAL_CA_FILE: .*ca\.pem holds no PEM certificate"),
    (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
     r"GATEWAY_PAYPAL_CA_FILE: .*ca\.pem holds no PEM certificate"),
])
def test_a_paypal_ca_file_that_cannot_serve_is_refused_when_the_web_server_starts(
        tmp_path, monkeypatch, content, message):
    """Checked before any web worker starts, not at the first PayPal delivery (a 500 for each):
    the server stops, naming the variable and the file."""
    # Imported for the first time, the module sets PROMETHEUS_MULTIPROC_DIR (for gunicorn's
    # workers) unless it is set: set here, it is unset again after the test, and the metrics of
    # every later test in this process stay single-process.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    from gateway.gunicorn_conf import on_starting

    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GATEWAY_PAYPAL_CA_FILE", str(path))
    logged: list[str] = []

    class Log:
        def error(self, fmt: str, *args: object) -> None:
            logged.append(fmt % args)

    class Server:
        log = Log()

    with pytest.raises(SystemExit) as stopped:
        on_starting(Server())
    assert stopped.value.code == 2
    assert len(logged) == 1 and re.search(message, logged[0])
    with pytest.raises(ConfigError, match=message):
        check_ca_file(path)


def test_the_settings_take_a_paypal_ca_file_without_reading_it(tmp_path):
    """The worker, the clock and the release step never verify PayPal, and a demo writes its
    CA after reading its settings: only the web server's start-up reads the file."""
    path = tmp_path / "devcerts" / "ca.pem"
    settings = load_settings({"GATEWAY_DATA_DIR": str(tmp_path),
                              "GATEWAY_PAYPAL_CA_FILE": str(path)})
    assert settings.paypal_ca_file == path


def test_a_paypal_ca_file_of_certificates_passes_the_start_up_check(tmp_path):
    from tests.support.paypal import shared_signer

    path = tmp_path / "ca.pem"
    path.write_bytes(shared_signer().ca_pem)
    check_ca_file(path)
