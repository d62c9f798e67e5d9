"""A worker SIGKILLed at each step of a refund: exactly one refund, and the right ledger."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from ledger.models import Action, ActionStatus, Decision, DecisionStatus, Refund
from sandbox import fake_providers, samples
from service.bootstrap import Container
from service.config import DEFAULT_MERCHANTS_FILE
from tests.e2e.conftest import ROOT, process_env
from tests.support import cases
from tests.support.delivery import deliver, run_worker
from tests.support.paypal import shared_signer
from tests.support.providers import assert_money_invariant
from workers.decide import decide
from workers.sweeper import sweep


@pytest.fixture
def providers(tmp_path: Path):
    fake, server = fake_providers.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    merchants = tmp_path / "merchants.toml"
    merchants.write_text(fake_providers.merchants_file_for(base,
                                                           DEFAULT_MERCHANTS_FILE.read_text()))
    yield fake, merchants
    server.shutdown()
    server.server_close()


def _worker(container: Container, merchants, crash_at: str | None) -> int:
    env = process_env(container.settings, GATEWAY_MERCHANTS_FILE=str(merchants))
    if crash_at:
        env["GATEWAY_CRASH_AT"] = crash_at
    done = subprocess.run([sys.executable, "-m", "cli.main", "worker", "--burst"], env=env,
                          cwd=ROOT, capture_output=True, timeout=120, check=False)
    return done.returncode


def _payment(client: FlaskClient, container: Container, fake, provider: str) -> str:
    if provider == "stripe":
        scenario = samples.Scenario(key="crash", amount=12000)
        charge = samples.stripe_event("charge.succeeded", scenario)
        fake.observe(charge)  # the provider captured what it tells the gateway about
        deliver(client, "stripe", charge)
        run_worker(container)
        return scenario.charge_id
    scenario = samples.Scenario(key="crash", amount=12000, payment_method="paypal")
    event = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario)
    fake.observe(event)
    deliver(client, "paypal", event, shared_signer())
    run_worker(container)
    return str(event["resource"]["id"])


@pytest.mark.parametrize("provider", ["stripe", "paypal"])
@pytest.mark.parametrize("crash_at", ["before_provider_call", "after_provider_call",
                                      "after_ledger_write"])
def test_a_worker_killed_at_any_step_refunds_exactly_once(client, container, providers,
                                                          provider, crash_at):
    """SIGKILL before the call, between call and ledger write, or after it: one refund."""
    fake, merchants = providers
    payment = _payment(client, container, fake, provider)
    decision_id = decide(container, "theopenhost", cases.guarantee_claim(12000, provider=provider),
                         payment_ref=payment, account_ref="acct", now=cases.DECIDED_AT)
    with container.sessions() as s:
        key = s.scalars(select(Action.id)).one()

    assert _worker(container, merchants, crash_at) == -9  # it really was SIGKILLed
    reached = fake.posts_with_key(key)
    assert reached == (0 if crash_at == "before_provider_call" else 1)

    sweep(container)  # the clock hands out what the dead worker left
    assert _worker(container, merchants, None) == 0

    assert len(fake.refunds) == 1 and key in fake.refunds  # one refund, under our key
    if provider == "stripe":
        assert fake.posts_with_key(key) == 1  # a resumed attempt looks up instead of posting
    with container.sessions() as s:
        action = s.get(Action, key)
        assert action.status == ActionStatus.SUCCEEDED
        assert action.provider_ref == fake.refunds[key]["id"]
        (refund,) = s.scalars(select(Refund)).all()
        assert (refund.amount, refund.action_id) == (12000, key)
        assert s.get(Decision, decision_id).status == DecisionStatus.EXECUTED
    assert fake.books()[payment] == (12000, 12000, "USD")
    assert_money_invariant(container, fake)
