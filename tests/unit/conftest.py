"""Fixtures the PayPal signature tests share: the session's dev signer, verifiers trusting it
(locally, or through PayPal's API), and fake HTTP that fails on any request not registered (and on
a registered one not made)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from gateway.signatures.paypal import PayPalVerifier
from gateway.signatures.paypal_api import PayPalApiVerifier
from sandbox.devcerts import DevPayPalSigner
from tests.support.paypal import sandbox_api_verifier, shared_signer


@pytest.fixture(scope="session")
def signer() -> DevPayPalSigner:
    return shared_signer()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """Fake HTTP: an unregistered request fails, and a registered one not made fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def api_verifier() -> PayPalApiVerifier:
    """PayPal verification by PayPal's sandbox API (fake it with ``fake_paypal``)."""
    return sandbox_api_verifier()


@pytest.fixture
def verifier(signer: DevPayPalSigner) -> PayPalVerifier:
    """Local PayPal verification trusting the session signer's CA."""
    return PayPalVerifier(signer.ca_pem)
