"""Local PayPal verification at its edges: what each refusal tells the sender (the 400 or 503
body), the size cap on a certificate download, and the disk cache's own limits."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.signatures.paypal import MAX_CERT_BYTES, PayPalVerifier
from sandbox.devcerts import make_signer, seed_cert_cache
from service.errors import VerificationError
from tests.support.paypal import (
    REFUND_EVENT,
    WEBHOOK_ID,
    leaf_issued_by,
    pem_of,
    self_made_ca,
    sent_at,
    serve_cert,
    signed_headers,
    verifier_at,
)


def refusal(verifier: PayPalVerifier, headers: dict[str, str]) -> tuple[str, str]:
    """Verify the refund event under ``headers``, which must be refused: (code, message)."""
    with pytest.raises(VerificationError) as caught:
        verifier.verify(headers, REFUND_EVENT, WEBHOOK_ID)
    return caught.value.code, caught.value.message


class EndlessBody(io.RawIOBase):
    """A response body of ``size`` bytes, produced as it is read, counting what was read."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.left = size
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self.left)
        buffer[:n] = b"A" * n
        self.left -= n
        self.served += n
        return n


# --- Fetching the certificate -------------------------------------------------------------------


@pytest.mark.parametrize(("answer", "why"), [
    ({"status": 404}, "HTTP 404"),
    ({"status": 503}, "HTTP 503"),
    ({"body": requests.ConnectTimeout("slow")}, "ConnectTimeout"),
], ids=["404", "503", "timeout"])
def test_a_failed_fetch_names_the_certificate_url_and_what_went_wrong(signer, rsps, verifier,
                                                                     answer, why):
    """The operator reads which URL could not be fetched, and why."""
    rsps.get(signer.cert_url, **answer)
    assert refusal(verifier, signer.headers(REFUND_EVENT, WEBHOOK_ID)) == (
        "cert_fetch_failed", f"could not fetch certificate {signer.cert_url}: {why}")


def test_a_certificate_of_exactly_the_cap_is_read_and_one_byte_more_is_not(signer, rsps):
    """The cap is a size allowed, not one refused: 64 KiB verifies, 64 KiB and a byte does not."""
    padded = signer.cert_pem + b"\n" * (MAX_CERT_BYTES - len(signer.cert_pem))
    rsps.get(signer.cert_url, body=padded)
    PayPalVerifier(signer.ca_pem).verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT,
                                         WEBHOOK_ID)
    rsps.replace("GET", signer.cert_url, body=padded + b"\n")
    assert refusal(PayPalVerifier(signer.ca_pem), signer.headers(REFUND_EVENT, WEBHOOK_ID)) == (
        "cert_fetch_failed",
        f"could not fetch certificate {signer.cert_url}: larger than {MAX_CERT_BYTES} bytes")


def test_an_endless_certificate_download_is_cut_off_near_the_cap(signer, rsps, verifier):
    """A sender-chosen host that never stops sending costs at most about the cap in memory:
    the download is read as it comes and abandoned once over the cap."""
    endless = EndlessBody(50 * MAX_CERT_BYTES)
    rsps.get(signer.cert_url, body=io.BufferedReader(endless))
    code, _ = refusal(verifier, signer.headers(REFUND_EVENT, WEBHOOK_ID))
    assert code == "cert_fetch_failed"
    assert endless.served < 2 * MAX_CERT_BYTES


# --- What a refused certificate URL says --------------------------------------------------------


def test_a_refused_cert_url_is_named_with_the_reason(signer, rsps, verifier):
    """The refusal quotes the URL it refused and says what is wrong with it."""
    url = "https://evil.example.com/v1/notifications/certs/CERT-1"
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID) | {"PAYPAL-CERT-URL": url}
    assert refusal(verifier, headers) == (
        "cert_url_not_allowed", f"PAYPAL-CERT-URL {url!r} is not on a PayPal API host")


def test_a_long_refused_cert_url_is_quoted_only_to_200_characters(signer, rsps, verifier):
    """A sender cannot make the answer (or the log) echo an arbitrarily long header."""
    url = "https://evil.example.com/v1/notifications/certs/" + "C" * 400
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID) | {"PAYPAL-CERT-URL": url}
    assert refusal(verifier, headers) == (
        "cert_url_not_allowed", f"PAYPAL-CERT-URL {url[:200]!r} is not on a PayPal API host")


# --- The certificate's validity -----------------------------------------------------------------


def test_a_certificate_is_good_from_its_first_to_its_last_second(signer, rsps):
    """notBefore and notAfter both lie inside the validity period (RFC 5280)."""
    leaf = x509.load_pem_x509_certificate(signer.cert_pem)
    serve_cert(rsps, signer)
    for at in (leaf.not_valid_before_utc, leaf.not_valid_after_utc):
        verifier_at(signer, at).verify(sent_at(signer, at), REFUND_EVENT, WEBHOOK_ID)


def test_an_expired_certificate_is_refused_naming_the_day_it_expired(signer, rsps):
    serve_cert(rsps, signer)
    later = signer.not_after + timedelta(days=1)
    assert refusal(verifier_at(signer, later), sent_at(signer, later)) == (
        "cert_expired", f"certificate expired on {signer.not_after:%Y-%m-%d}")


def test_a_certificate_not_yet_valid_is_refused_naming_its_first_day(signer, rsps):
    serve_cert(rsps, signer)
    first = x509.load_pem_x509_certificate(signer.cert_pem).not_valid_before_utc
    earlier = first - timedelta(hours=1)
    assert refusal(verifier_at(signer, earlier), sent_at(signer, earlier)) == (
        "cert_not_yet_valid", f"certificate is valid from {first:%Y-%m-%d}")


def test_a_memoised_certificate_serves_until_its_last_second(signer, rsps):
    """Checked once, a certificate is not fetched again while it is valid, up to notAfter."""
    serve_cert(rsps, signer)
    now = [signer.not_after - timedelta(days=1)]
    verifier = PayPalVerifier(signer.ca_pem, clock=lambda: now[0])
    verifier.verify(sent_at(signer, now[0]), REFUND_EVENT, WEBHOOK_ID)
    now[0] = signer.not_after
    verifier.verify(sent_at(signer, now[0]), REFUND_EVENT, WEBHOOK_ID)
    assert len(rsps.calls) == 1


def test_a_certificate_from_another_ca_is_refused_saying_why(signer, rsps):
    """The refusal says the chain failed, followed by the path builder's own reason."""
    stranger = make_signer()
    serve_cert(rsps, stranger)
    code, message = refusal(PayPalVerifier(signer.ca_pem),
                            stranger.headers(REFUND_EVENT, WEBHOOK_ID))
    prefix = "certificate does not chain to PayPal's CAs: "
    assert code == "cert_untrusted"
    assert message.startswith(prefix) and len(message) > len(prefix)


@pytest.fixture(scope="module")
def own_root() -> tuple[rsa.RSAPrivateKey, x509.Certificate, datetime]:
    """A root of our own whose key also signs its leaves and the events: (key, root, now)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC).replace(microsecond=0)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Hand-Made Root")])
    return key, self_made_ca(name, name, key, now), now


def verify_leaf(rsps, own_root, name: str, alt_names: list[str]) -> None:
    """Verify an event signed under a leaf of ``own_root`` with these names."""
    key, root, now = own_root
    url = "https://api.paypal.com/v1/notifications/certs/CERT-HAND-MADE"
    rsps.get(url, body=pem_of(leaf_issued_by(root, key, key, now, name, alt_names)))
    verifier = PayPalVerifier(pem_of(root), clock=lambda: now)
    verifier.verify(signed_headers(key, url, now), REFUND_EVENT, WEBHOOK_ID)


def test_without_alternative_names_a_paypal_common_name_passes(rsps, own_root):
    """With no subjectAltName the subject's CN is the name checked (RFC 6125)."""
    verify_leaf(rsps, own_root, "messageverificationcerts.paypal.com", [])


def test_without_alternative_names_another_common_name_is_refused_by_name(rsps, own_root):
    with pytest.raises(VerificationError) as caught:
        verify_leaf(rsps, own_root, "evil.example", [])
    assert (caught.value.code, caught.value.message) == (
        "cert_name_mismatch", "certificate names ['evil.example'] are not under *.paypal.com")


def test_a_refusal_lists_at_most_five_of_the_names_found(rsps, own_root):
    """A certificate with many names cannot make the answer arbitrarily long."""
    names = [f"host{i}.evil.example" for i in range(7)]
    with pytest.raises(VerificationError) as caught:
        verify_leaf(rsps, own_root, names[0], names)
    assert caught.value.message == f"certificate names {names[:5]} are not under *.paypal.com"


def test_the_bare_suffix_is_not_a_paypal_name(rsps):
    """A certificate for ".paypal.com" names no host under paypal.com."""
    odd = make_signer(common_name=".paypal.com")
    serve_cert(rsps, odd)
    code, _ = refusal(PayPalVerifier(odd.ca_pem), odd.headers(REFUND_EVENT, WEBHOOK_ID))
    assert code == "cert_name_mismatch"


def test_a_certificate_whose_key_is_not_rsa_is_refused(rsps, own_root):
    """PayPal signs with RSA: a certificate for an EC key cannot have signed the event."""
    key, root, now = own_root
    url = "https://api.paypal.com/v1/notifications/certs/CERT-EC"
    ec_leaf = leaf_issued_by(root, ec.generate_private_key(ec.SECP256R1()), key, now)
    rsps.get(url, body=pem_of(ec_leaf))
    verifier = PayPalVerifier(pem_of(root), clock=lambda: now)
    assert refusal(verifier, signed_headers(key, url, now)) == (
        "cert_invalid", "certificate key is not RSA")


def test_a_download_that_is_not_a_certificate_is_refused_saying_so(signer, rsps, verifier):
    rsps.get(signer.cert_url, body=b"<html>oops</html>")
    assert refusal(verifier, signer.headers(REFUND_EVENT, WEBHOOK_ID)) == (
        "cert_invalid", "certificate is not PEM X.509")


# --- The disk cache -----------------------------------------------------------------------------


def test_a_cached_certificate_of_exactly_the_cap_is_used_without_a_fetch(signer, rsps, tmp_path):
    padded = signer.cert_pem + b"\n" * (MAX_CERT_BYTES - len(signer.cert_pem))
    seed_cert_cache(tmp_path, signer.cert_url, padded)
    PayPalVerifier(signer.ca_pem, cache_dir=tmp_path).verify(
        signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    assert len(rsps.calls) == 0


def test_a_cached_file_over_the_cap_is_ignored_and_fetched_again(signer, rsps, tmp_path):
    """A cache file larger than any certificate download could be is not read as one."""
    padded = signer.cert_pem + b"\n" * (MAX_CERT_BYTES + 1 - len(signer.cert_pem))
    seed_cert_cache(tmp_path, signer.cert_url, padded)
    serve_cert(rsps, signer)
    PayPalVerifier(signer.ca_pem, cache_dir=tmp_path).verify(
        signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    assert len(rsps.calls) == 1
