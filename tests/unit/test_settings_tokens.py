"""Admin tokens are compared as digests: each merchant's HMAC-SHA256 is taken at load, and a
presented token's digest is compared with every one of them in constant time."""

from __future__ import annotations

import dataclasses
import hmac

import pytest

from gateway import auth
from service.config import DEFAULT_MERCHANTS_FILE, load_merchants, token_digest


@pytest.fixture
def merchants():
    return load_merchants(DEFAULT_MERCHANTS_FILE, {})


def test_the_digest_is_taken_at_load_and_kept_out_of_repr(merchants):
    merchant = merchants["theopenhost"]
    assert merchant.admin_token_digest == token_digest(merchant.admin_token)
    assert len(merchant.admin_token_digest) == 32
    assert merchant.admin_token not in repr(merchant)
    assert "admin_token_digest" not in repr(merchant)


def test_a_replaced_merchant_gets_the_digest_of_its_token(merchants):
    other = dataclasses.replace(merchants["theopenhost"], admin_token="another-token-of-16+")
    assert other.admin_token_digest == token_digest("another-token-of-16+")


def test_the_right_token_finds_its_merchant_and_no_other(merchants):
    for name, merchant in merchants.items():
        assert auth.merchant_for_token(merchants, merchant.admin_token) is merchant, name


@pytest.mark.parametrize("wrong", [
    "", "x", "test-admin-theopenhost-00", "test-admin-theopenhost-0033",
    "TEST-ADMIN-THEOPENHOST-003", " test-admin-theopenhost-003", "test-admin-theopenhost-003\x00",
    "\udcff" * 40])
def test_a_wrong_token_finds_no_merchant(merchants, wrong):
    """Prefixes, extensions, case, blanks, NUL and unencodable text: none matches."""
    assert auth.merchant_for_token(merchants, wrong) is None


def test_comparison_is_over_fixed_length_digests_of_every_merchant(merchants, monkeypatch):
    """Timing-independent by construction: every comparison is between two 32-byte digests
    (whatever the length or content of the token), in constant time, and every merchant is
    compared whether or not one matched earlier. The plain token is never compared."""
    calls: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)  # the module gateway.auth uses
    tokens = [merchants["oneclick"].admin_token, "short", "y" * 10_000,
              next(iter(merchants.values())).admin_token]
    for token in tokens:
        calls.clear()
        auth.merchant_for_token(merchants, token)
        assert len(calls) == len(merchants)
        assert all(len(a) == len(b) == 32 for a, b in calls)
        assert {a for a, _ in calls} == {m.admin_token_digest for m in merchants.values()}
        assert {b for _, b in calls} == {token_digest(token)}
        assert not any(token.encode() in (a, b) for a, b in calls)


def test_the_digest_is_keyed_per_process():
    """An HMAC, not a bare SHA-256: a digest copied out of the process cannot be checked
    against guessed tokens offline."""
    import hashlib

    assert token_digest("a-token-of-the-shop") != hashlib.sha256(b"a-token-of-the-shop").digest()
    assert token_digest("a-token-of-the-shop") == token_digest("a-token-of-the-shop")
