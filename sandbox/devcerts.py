"""Development certificates that sign webhooks the way PayPal does, for tests and the demo.

A throwaway CA (optionally with an intermediate) issues a leaf for
``messageverificationcerts.sandbox.paypal.com``. A gateway that trusts that CA
(``GATEWAY_PAYPAL_CA_FILE=<data_dir>/devcerts/ca.pem``) and finds the leaf in its certificate
cache verifies simulated events exactly as it verifies PayPal's, with no network.
Never point a live merchant at this CA.
"""

from __future__ import annotations

import base64
import fcntl
import functools
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.signatures.paypal import (
    AUTH_ALGO,
    Transmission,
    cert_cache_path,
    signed_message,
    write_atomically,
)

SANDBOX_CERT_NAME = "messageverificationcerts.sandbox.paypal.com"
_DEV_LIFETIME = timedelta(days=730)
_RENEW_BEFORE = timedelta(days=7)


@dataclass(frozen=True)
class DevPayPalSigner:
    """A dev CA, its leaf certificate and key, and the URL the leaf is "served" from."""

    ca_pem: bytes
    cert_pem: bytes  # leaf, then any intermediates
    key_pem: bytes = field(repr=False)
    cert_url: str

    def headers(
        self,
        raw_body: bytes,
        webhook_id: str,
        *,
        transmission_id: str | None = None,
        transmission_time: datetime | None = None,
    ) -> dict[str, str]:
        """The PAYPAL-* headers PayPal would send with ``raw_body`` for ``webhook_id``."""
        when = transmission_time or datetime.now(UTC)
        transmission = Transmission(
            transmission_id=transmission_id or str(uuid.uuid4()),
            transmission_time=when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            transmission_sig="",
            cert_url=self.cert_url,
            auth_algo=AUTH_ALGO,
        )
        message = signed_message(transmission, webhook_id, raw_body)
        signature = _private_key(self.key_pem).sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {
            "PAYPAL-TRANSMISSION-ID": transmission.transmission_id,
            "PAYPAL-TRANSMISSION-TIME": transmission.transmission_time,
            "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
            "PAYPAL-CERT-URL": self.cert_url,
            "PAYPAL-AUTH-ALGO": AUTH_ALGO,
            "PAYPAL-AUTH-VERSION": "v2",
        }

    @property
    def not_after(self) -> datetime:
        return x509.load_pem_x509_certificate(self.cert_pem).not_valid_after_utc


def make_signer(
    *,
    cert_url: str | None = None,
    common_name: str = SANDBOX_CERT_NAME,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    with_intermediate: bool = False,
) -> DevPayPalSigner:
    """A fresh CA and leaf (2048-bit RSA: a few hundred ms; build one per test session)."""
    now = datetime.now(UTC)
    not_before = not_before or now - timedelta(days=1)
    not_after = not_after or now + _DEV_LIFETIME
    ca_key, ca_cert = _ca("Gateway Dev PayPal Root CA", None, None, now)
    issuer_key, issuer_cert, chain = ca_key, ca_cert, []
    if with_intermediate:
        issuer_key, issuer_cert = _ca("Gateway Dev PayPal Issuing CA", ca_key, ca_cert, now)
        chain = [issuer_cert]
    leaf_key = _new_key()
    leaf = _leaf(common_name, leaf_key, issuer_key, issuer_cert, not_before, not_after)
    return DevPayPalSigner(
        ca_pem=_pem(ca_cert),
        cert_pem=b"".join(_pem(cert) for cert in [leaf, *chain]),
        key_pem=leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        cert_url=cert_url or _dev_cert_url(leaf),
    )


def load_or_create_dev_signer(data_dir: Path) -> DevPayPalSigner:
    """The signer kept under ``data_dir/devcerts`` (made on first use, renewed near expiry),
    with its leaf seeded into the verifier's cache ``data_dir/paypal-certs``.

    A file lock keeps a gateway and a simulator started together from minting two CAs.
    """
    folder = data_dir / "devcerts"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        signer = _load(folder)
        if signer is None or signer.not_after - datetime.now(UTC) < _RENEW_BEFORE:
            signer = make_signer()
            _save(folder, signer)
    seed_cert_cache(data_dir / "paypal-certs", signer.cert_url, signer.cert_pem)
    return signer


def seed_cert_cache(cache_dir: Path, cert_url: str, pem: bytes) -> None:
    """Put ``pem`` where PayPalVerifier(cache_dir=...) looks for the certificate at ``cert_url``."""
    write_atomically(cert_cache_path(cache_dir, cert_url), pem)


def _load(folder: Path) -> DevPayPalSigner | None:
    try:
        ca_pem, cert_pem, key_pem = (
            (folder / name).read_bytes() for name in ("ca.pem", "cert.pem", "key.pem")
        )
    except FileNotFoundError:
        return None
    leaf = x509.load_pem_x509_certificate(cert_pem)
    return DevPayPalSigner(ca_pem, cert_pem, key_pem, _dev_cert_url(leaf))


def _save(folder: Path, signer: DevPayPalSigner) -> None:
    write_atomically(folder / "key.pem", signer.key_pem)
    (folder / "key.pem").chmod(0o600)
    write_atomically(folder / "ca.pem", signer.ca_pem)
    write_atomically(folder / "cert.pem", signer.cert_pem)


def _dev_cert_url(leaf: x509.Certificate) -> str:
    """Derived from the certificate, so a persisted signer needs no extra file for its URL."""
    digest = hashlib.sha256(leaf.public_bytes(serialization.Encoding.DER)).hexdigest()[:24]
    return f"https://api.sandbox.paypal.com/v1/notifications/certs/CERT-DEV-{digest}"


@functools.lru_cache(maxsize=16)
def _private_key(key_pem: bytes) -> rsa.RSAPrivateKey:
    """Loading checks the RSA key (~50 ms), so each key is loaded once, not once per event."""
    key = serialization.load_pem_private_key(key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("dev signer key is not RSA")
    return key


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca(
    name: str,
    parent_key: rsa.RSAPrivateKey | None,
    parent: x509.Certificate | None,
    now: datetime,
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A root when ``parent`` is None, else an intermediate that may issue leaves only."""
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(parent.subject if parent else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2))
        .not_valid_after(now + _DEV_LIFETIME + timedelta(days=30))
        .add_extension(
            x509.BasicConstraints(ca=True, path_length=None if parent is None else 0), critical=True
        )
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if parent is not None:
        builder = builder.add_extension(_aki(parent), critical=False)
    return key, builder.sign(parent_key or key, hashes.SHA256())


def _leaf(
    common_name: str,
    key: rsa.RSAPrivateKey,
    issuer_key: rsa.RSAPrivateKey,
    issuer: x509.Certificate,
    not_before: datetime,
    not_after: datetime,
) -> x509.Certificate:
    """Shaped like PayPal's: CN and SAN the host name, serverAuth/clientAuth, not a CA."""
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_aki(issuer), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=not cert_sign,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )
