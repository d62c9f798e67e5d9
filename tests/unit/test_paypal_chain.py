"""PayPal certificate chains: a leaf served alone is completed from the bundled intermediates,
which are never trust anchors.

PayPal's certificate URL may serve the signing certificate alone (its published test vector's
does), so DigiCert's intermediates ship in ``paypal_intermediates.pem`` and are offered to path
building; the path must still end at a root in ``paypal_ca.pem``. PayPal's genuine published
vector (tests/fixtures/paypal/published_vector, from paypal/PayPal-Java-SDK) verifies end to end
with the verifier's clock at its transmission time.
"""

from __future__ import annotations

import json
import re
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from gateway.signatures.paypal import (
    PayPalVerifier,
    load_bundled_ca,
    load_bundled_intermediates,
    transmission_time,
)
from sandbox.devcerts import DevPayPalSigner, make_signer
from service.errors import VerificationError
from tests.support.paypal import (
    REFUND_EVENT,
    WEBHOOK_ID,
    leaf_issued_by,
    pem_of,
    self_made_ca,
    signed_headers,
)

VECTOR_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "paypal" / "published_vector"
# The vector's own PAYPAL-CERT-URL is a placeholder of the Java test (which stubs the download)
# and not of the allowed form; the URL is not signed, so the leaf is served from an allowed one.
VECTOR_CERT_URL = "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-PUBLISHED-VECTOR"
ROOTS = x509.load_pem_x509_certificates(load_bundled_ca())
INTERMEDIATES = x509.load_pem_x509_certificates(load_bundled_intermediates())


def _cn(name: x509.Name) -> str:
    return str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def refusal(verifier: PayPalVerifier, headers: dict[str, str], body: bytes, webhook_id: str
            ) -> str:
    with pytest.raises(VerificationError) as caught:
        verifier.verify(headers, body, webhook_id)
    return caught.value.code


@pytest.fixture
def rsps():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


# --- The bundled intermediates ------------------------------------------------------------------


def test_the_bundle_holds_the_intermediates_paypals_signing_certificates_are_issued_under():
    assert sorted(_cn(cert.subject) for cert in INTERMEDIATES) == sorted([
        "DigiCert SHA2 Extended Validation Server CA",
        "DigiCert SHA2 High Assurance Server CA",
        "DigiCert SHA2 Secure Server CA",
        "DigiCert TLS RSA SHA256 2020 CA1",
        "DigiCert Global G2 TLS RSA SHA256 2020 CA1",
        "DigiCert EV RSA CA G2",
    ])


@pytest.mark.parametrize("cert", INTERMEDIATES, ids=[_cn(c.subject) for c in INTERMEDIATES])
def test_every_intermediate_is_a_ca_issued_by_a_bundled_root(cert):
    """Signed by a root in paypal_ca.pem (the signature checked), a CA, and not itself a root."""
    (root,) = [root for root in ROOTS if root.subject == cert.issuer]
    cert.verify_directly_issued_by(root)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.subject != cert.issuer
    assert cert not in ROOTS


def _openssl_name(name: x509.Name) -> str:
    return ", ".join(f"{attr.rfc4514_attribute_name} = {attr.value!s}" for attr in name)


def _openssl_time(when: datetime) -> str:
    return f"{when:%b} {when.day:2d} {when:%H:%M:%S %Y} GMT"


def test_the_notes_above_each_block_describe_that_block():
    """Subject, issuer, notAfter and SHA-256 fingerprint, as ``openssl x509`` prints them."""
    text = load_bundled_intermediates().decode()
    blocks = re.findall(
        r"((?:# [^\n]*\n)+)(-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----)", text, re.S)
    assert len(blocks) == len(INTERMEDIATES)
    for notes, pem in blocks:
        cert = x509.load_pem_x509_certificate(pem.encode())
        fingerprint = ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))
        assert notes.splitlines()[-4:] == [
            f"# subject={_openssl_name(cert.subject)}",
            f"# issuer={_openssl_name(cert.issuer)}",
            f"# notAfter={_openssl_time(cert.not_valid_after_utc)}",
            f"# sha256 Fingerprint={fingerprint}",
        ]


# --- PayPal's published vector: a genuine delivery, its leaf served alone -----------------------


@pytest.fixture(scope="module")
def vector() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((VECTOR_DIR / "vector.json").read_text("utf-8"))
    data["raw"] = data["body"].encode()
    assert zlib.crc32(data["raw"]) == data["body_crc32"]  # the exact bytes PayPal signed
    data["leaf_pem"] = (VECTOR_DIR / "leaf.pem").read_bytes()
    data["sent"] = transmission_time(data["headers"]["PAYPAL-TRANSMISSION-TIME"])
    return data


def _vector_headers(vector: dict[str, Any], **changes: str) -> dict[str, str]:
    return {**vector["headers"], "PAYPAL-CERT-URL": VECTOR_CERT_URL, **changes}


def test_the_vector_serves_a_paypal_leaf_alone(vector):
    (leaf,) = x509.load_pem_x509_certificates(vector["leaf_pem"])
    assert _cn(leaf.subject) == "messageverificationcerts.sandbox.paypal.com"
    assert _cn(leaf.issuer) == "DigiCert SHA2 Extended Validation Server CA"
    assert leaf.not_valid_before_utc <= vector["sent"] <= leaf.not_valid_after_utc


def test_paypals_published_vector_verifies_with_the_bundled_roots_and_intermediates(vector, rsps):
    """The bundled trust file as shipped, the leaf alone from the URL, the clock at the vector's
    transmission time (for the tolerance and the certificate's validity alike)."""
    rsps.get(VECTOR_CERT_URL, body=vector["leaf_pem"])
    verifier = PayPalVerifier(load_bundled_ca(), clock=lambda: vector["sent"])
    verifier.verify(_vector_headers(vector), vector["raw"], vector["webhook_id"])
    assert [call.request.url for call in rsps.calls] == [VECTOR_CERT_URL]


def test_without_the_intermediates_the_vector_was_refused_as_untrusted(vector, rsps):
    """What shipping the intermediates fixes: roots alone cannot complete the leaf's chain."""
    rsps.get(VECTOR_CERT_URL, body=vector["leaf_pem"])
    verifier = PayPalVerifier(load_bundled_ca(), intermediates_pem=b"",
                              clock=lambda: vector["sent"])
    code = refusal(verifier, _vector_headers(vector), vector["raw"], vector["webhook_id"])
    assert code == "cert_untrusted"


def test_the_vector_is_really_checked(vector, rsps):
    """One byte of the body, another webhook id, or another transmission id: bad signature."""
    rsps.get(VECTOR_CERT_URL, body=vector["leaf_pem"])
    verifier = PayPalVerifier(load_bundled_ca(), clock=lambda: vector["sent"])
    tampered = vector["raw"].replace(b'"value":"100"', b'"value":"900"')
    assert tampered != vector["raw"]
    headers = _vector_headers(vector)
    assert refusal(verifier, headers, tampered, vector["webhook_id"]) == "bad_signature"
    assert refusal(verifier, headers, vector["raw"], "96605875FF6516634") == "bad_signature"
    other_id = _vector_headers(vector, **{"PAYPAL-TRANSMISSION-ID": "071f7d20-1584-11e7-abf0-"
                                                                   "6b62a8a99ac5"})
    assert refusal(verifier, other_id, vector["raw"], vector["webhook_id"]) == "bad_signature"


def test_the_vector_replayed_today_is_refused_for_its_age_before_any_fetch(vector, rsps):
    """The genuine delivery, sent again years later: stale, and nothing is fetched."""
    verifier = PayPalVerifier(load_bundled_ca())
    code = refusal(verifier, _vector_headers(vector), vector["raw"], vector["webhook_id"])
    assert code == "stale_transmission"
    assert len(rsps.calls) == 0


def test_the_vector_past_the_tolerance_is_refused(vector, rsps):
    """At its own time plus the tolerance it still verifies; one second more, it is stale."""
    rsps.get(VECTOR_CERT_URL, body=vector["leaf_pem"])
    at_edge = PayPalVerifier(load_bundled_ca(), clock=lambda: vector["sent"] + timedelta(
        seconds=300))
    at_edge.verify(_vector_headers(vector), vector["raw"], vector["webhook_id"])
    past = PayPalVerifier(load_bundled_ca(), clock=lambda: vector["sent"] + timedelta(
        seconds=301))
    code = refusal(past, _vector_headers(vector), vector["raw"], vector["webhook_id"])
    assert code == "stale_transmission"


def test_the_vectors_own_placeholder_cert_url_is_refused_before_any_fetch(vector, rsps):
    verifier = PayPalVerifier(load_bundled_ca(), clock=lambda: vector["sent"])
    code = refusal(verifier, vector["headers"], vector["raw"], vector["webhook_id"])
    assert code == "cert_url_not_allowed"
    assert len(rsps.calls) == 0


# --- An intermediate is never a trust anchor ----------------------------------------------------


@pytest.fixture(scope="module")
def forger_key() -> rsa.RSAPrivateKey:
    """Signs the forged certificates."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def leaf_key() -> rsa.RSAPrivateKey:
    """The forged leaf's own key, which signs the event."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_the_forged_leaf_shape_verifies_under_a_root_that_did_sign_it(rsps, forger_key, leaf_key):
    """The control for the refusals below: built the same way and signed by a trusted root's own
    key, such a leaf passes, so what refuses the forgeries is the chain alone."""
    now = datetime.now(UTC).replace(microsecond=0)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Forger Root")])
    root = self_made_ca(name, name, forger_key, now)
    url = "https://api.paypal.com/v1/notifications/certs/CERT-CONTROL"
    rsps.get(url, body=pem_of(leaf_issued_by(root, leaf_key, forger_key, now)))
    verifier = PayPalVerifier(pem_of(root), clock=lambda: now)
    verifier.verify(signed_headers(leaf_key, url, now), REFUND_EVENT, WEBHOOK_ID)


@pytest.mark.parametrize("issuer", INTERMEDIATES, ids=[_cn(c.subject) for c in INTERMEDIATES])
def test_a_leaf_naming_a_shipped_intermediate_but_signed_by_another_key_is_refused(
        rsps, forger_key, leaf_key, issuer):
    """Issuer name and key id copied from a shipped intermediate, the signature the forger's:
    the bundled intermediate does not vouch for it, and is no anchor to stop at."""
    now = min(issuer.not_valid_after_utc, datetime.now(UTC)) - timedelta(days=2)
    url = "https://api.paypal.com/v1/notifications/certs/CERT-FORGED"
    rsps.get(url, body=pem_of(leaf_issued_by(issuer, leaf_key, forger_key, now)))
    verifier = PayPalVerifier(load_bundled_ca(), clock=lambda: now)
    code = refusal(verifier, signed_headers(leaf_key, url, now), REFUND_EVENT, WEBHOOK_ID)
    assert code == "cert_untrusted"


def test_a_forged_copy_of_a_shipped_intermediate_sent_with_the_leaf_is_refused(
        rsps, forger_key, leaf_key):
    """A self-made CA with a shipped intermediate's exact subject, issuer and serial, served
    after a leaf it signed."""
    real = next(c for c in INTERMEDIATES
                if _cn(c.subject) == "DigiCert Global G2 TLS RSA SHA256 2020 CA1")
    now = datetime.now(UTC).replace(microsecond=0)
    fake = self_made_ca(real.subject, real.issuer, forger_key, now, serial=real.serial_number)
    url = "https://api.paypal.com/v1/notifications/certs/CERT-FORGED-CHAIN"
    rsps.get(url, body=pem_of(leaf_issued_by(fake, leaf_key, forger_key, now), fake))
    verifier = PayPalVerifier(load_bundled_ca(), clock=lambda: now)
    code = refusal(verifier, signed_headers(leaf_key, url, now), REFUND_EVENT, WEBHOOK_ID)
    assert code == "cert_untrusted"


# --- The same mechanism with a dev CA: root, intermediate, leaf served alone --------------------


@pytest.fixture(scope="module")
def chained() -> DevPayPalSigner:
    return make_signer(with_intermediate=True)


def _leaf_alone(signer: DevPayPalSigner) -> tuple[bytes, bytes]:
    leaf, intermediate = x509.load_pem_x509_certificates(signer.cert_pem)
    return pem_of(leaf), pem_of(intermediate)


def test_a_leaf_served_alone_verifies_with_its_intermediate_supplied(rsps, chained):
    leaf, intermediate = _leaf_alone(chained)
    rsps.get(chained.cert_url, body=leaf)
    verifier = PayPalVerifier(chained.ca_pem, intermediates_pem=intermediate)
    verifier.verify(chained.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)


def test_a_leaf_served_alone_without_its_intermediate_is_refused(rsps, chained):
    leaf, _ = _leaf_alone(chained)
    rsps.get(chained.cert_url, body=leaf)
    verifier = PayPalVerifier(chained.ca_pem, intermediates_pem=b"")
    assert refusal(verifier, chained.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT,
                   WEBHOOK_ID) == "cert_untrusted"


def test_a_supplied_intermediate_is_not_a_trust_anchor(rsps, chained):
    """The intermediate that issued the leaf, supplied, but its root not trusted: refused."""
    leaf, intermediate = _leaf_alone(chained)
    rsps.get(chained.cert_url, body=leaf)
    stranger = make_signer()
    verifier = PayPalVerifier(stranger.ca_pem, intermediates_pem=intermediate)
    assert refusal(verifier, chained.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT,
                   WEBHOOK_ID) == "cert_untrusted"


def test_a_leaf_issued_by_the_root_itself_needs_no_intermediate(rsps):
    """Supplied intermediates are candidates only: a direct path still works."""
    direct = make_signer()
    rsps.get(direct.cert_url, body=direct.cert_pem)
    _, intermediate = _leaf_alone(make_signer(with_intermediate=True))
    verifier = PayPalVerifier(direct.ca_pem, intermediates_pem=intermediate)
    verifier.verify(direct.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
