"""Every support flow through the real processes: gunicorn, a worker and the clock, on real
Redis and the test database, with Stripe and PayPal answered by the local fake at HTTP level."""

from __future__ import annotations

import os
import socket
import sys
import time

import pytest
import requests
from sqlalchemy import select

from ledger.models import AccountCredit, Action, AuditEntry, Decision, Refund, SupportRequest
from service import fake_providers
from service.config import DEFAULT_MERCHANTS_FILE, load_merchants
from service.demo_flows import FLOWS, ended_in, run_flows
from tests.e2e.conftest import ROOT, process_env, worker_command


@pytest.fixture
def gateway(container, spawn, tmp_path):  # type: ignore[no-untyped-def]
    """The gateway as the Procfile runs it, pointed at the fake providers."""
    fake, server = fake_providers.start()
    merchants = tmp_path / "merchants.toml"
    merchants.write_text(fake_providers.merchants_file_for(
        f"http://127.0.0.1:{server.server_address[1]}", DEFAULT_MERCHANTS_FILE.read_text()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = process_env(container.settings, PORT=str(port), GATEWAY_MERCHANTS_FILE=str(merchants))
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    web = next(line.split(":", 1)[1] for line in (ROOT / "Procfile").read_text().splitlines()
               if line.startswith("web:"))
    spawn([web], env, "web", shell=True)
    spawn(worker_command(), env, "worker")
    spawn([sys.executable, "-m", "service.cli", "clock", "--interval", "1"], env, "clock")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            time.sleep(0.2)
    settings = container.settings
    settings = type(settings)(**{**settings.__dict__, "merchants": load_merchants(merchants, {})})
    yield base, settings, fake
    server.shutdown()
    server.server_close()


def test_every_merchant_gets_a_refund_a_credit_a_denial_and_a_review(gateway, container):
    """Each seed merchant's four flows end as the policy says, and the money moved once."""
    base, settings, fake = gateway
    results = run_flows(base, settings)
    assert [(r.flow.merchant, r.flow.label, ended_in(r), r.outcome) for r in results] == [
        (f.merchant, f.label, f.label, f.expect) for f in FLOWS]

    with container.sessions() as s:
        refunds = s.scalars(select(Action).where(Action.kind == "refund")).all()
        credits = s.scalars(select(AccountCredit)).all()
        # every refund reached the provider once, under its action id, and is in the ledger
        for action in refunds:
            assert fake.posts_with_key(action.id) == 1
            assert action.provider_ref == fake.refunds[action.id]["id"]
            ledger = s.scalars(select(Refund).where(Refund.action_id == action.id)).one()
            assert ledger.amount == action.amount
        assert len(refunds) == 4 and len(credits) == 4
        assert {c.clause for c in credits} == {"review"}
        # every decision traces back to the request that caused it, and the request to its filer
        for decision in s.scalars(select(Decision)):
            request = s.get(SupportRequest, decision.source_request_id)
            assert request is not None and request.decision_id == decision.id
        audited = {(e.action, e.subject) for e in s.scalars(select(AuditEntry))}
        for result in results:
            assert ("request.filed", result.request_id) in audited
            assert ("request.decided", result.request_id) in audited
