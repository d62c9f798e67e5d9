"""Fixtures the PayPal signature tests share: the session's dev signer, and fake HTTP that fails
on any request not registered (and on a registered one not made)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from sandbox.devcerts import DevPayPalSigner
from tests.support.paypal import shared_signer


@pytest.fixture(scope="session")
def signer() -> DevPayPalSigner:
    return shared_signer()


@pytest.fixture
def rsps() -> Iterator[responses.RequestsMock]:
    """Fake HTTP: an unregistered request fails, and a registered one not made fails the test."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock
