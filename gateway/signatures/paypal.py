"""PayPal webhook signature verification, done locally against PayPal's signing certificate.

PayPal signs ``transmission_id|transmission_time|webhook_id|crc32(raw body)`` with RSA PKCS#1 v1.5
SHA-256 and names the signing certificate by URL in ``PAYPAL-CERT-URL``. That URL is chosen by
whoever sent the request, so it is checked against PayPal's API hosts before anything is fetched,
and the fetched certificate must chain to PayPal's issuing CAs and name a ``*.paypal.com`` host.
The certificate URL often serves the leaf alone, so DigiCert's intermediates that issue PayPal's
signing certificates are bundled (``paypal_intermediates.pem``) and offered to path building as
untrusted certificates; only the roots in ``paypal_ca.pem`` (or the configured CA file) are anchors.

The signed transmission time must be within ``tolerance`` seconds of now, either way, and is
checked before anything is fetched: a captured delivery cannot be replayed later (a genuine
redelivery from PayPal is a new transmission, with a new time and signature).

``paypalrestsdk.WebhookEvent.verify`` is not used: it calls ``OpenSSL.crypto.verify`` (removed in
pyOpenSSL 24.3, so it always answers False) and fetches any ``cert_url`` it is given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import re
import tempfile
import threading
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store
from cryptography.x509.verification import VerificationError as ChainError

from service.errors import VerificationError

log = logging.getLogger(__name__)

AUTH_ALGO = "SHA256withRSA"
CERT_HOSTS = frozenset(
    {"api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com", "api-m.sandbox.paypal.com"}
)
CERT_PATH_PREFIX = "/v1/notifications/certs/"
MAX_CERT_BYTES = 64 * 1024
_CERT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_NAME_SUFFIX = ".paypal.com"
_LOCK_STRIPES = 16
DEFAULT_TOLERANCE = 300  # seconds, as for Stripe signatures
# RFC 3339 date-time, as PayPal sends it (2017-03-30T20:04:05Z); an offset is required.
_TRANSMISSION_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:(Z)|([+-])([0-9]{2}):([0-9]{2}))"
)


@dataclass(frozen=True)
class Transmission:
    """The PayPal-* headers of one delivery, all present."""

    transmission_id: str
    transmission_time: str
    transmission_sig: str
    cert_url: str
    auth_algo: str


def load_bundled_ca() -> bytes:
    """The DigiCert roots PayPal's message-verification certificates chain to."""
    return resources.files(__package__).joinpath("paypal_ca.pem").read_bytes()


def load_bundled_intermediates() -> bytes:
    """DigiCert intermediates that issue PayPal's signing certificates: untrusted, for chain
    building only, so that a certificate URL serving the leaf alone still verifies."""
    return resources.files(__package__).joinpath("paypal_intermediates.pem").read_bytes()


MAX_TRANSMISSION_ID = 255  # PayPal's are UUIDs; the inbox stores at most this many characters


def read_transmission(headers: Mapping[str, str]) -> Transmission:
    """Pick the PayPal-* headers (any case); refuse a missing one or an algorithm not ours."""
    lowered = {key.lower(): value for key, value in headers.items()}

    def need(name: str) -> str:
        value = lowered.get(name.lower(), "")  # used as sent: the signature covers exact text
        if not value.strip():
            raise VerificationError("missing_header", f"missing header {name}")
        return value

    transmission = Transmission(
        transmission_id=need("PAYPAL-TRANSMISSION-ID"),
        transmission_time=need("PAYPAL-TRANSMISSION-TIME"),
        transmission_sig=need("PAYPAL-TRANSMISSION-SIG"),
        cert_url=need("PAYPAL-CERT-URL"),
        auth_algo=need("PAYPAL-AUTH-ALGO"),
    )
    if len(transmission.transmission_id) > MAX_TRANSMISSION_ID:  # the inbox's column holds 255
        raise VerificationError("malformed_header", "PAYPAL-TRANSMISSION-ID is longer than "
                                f"{MAX_TRANSMISSION_ID} characters")
    if transmission.auth_algo != AUTH_ALGO:
        raise VerificationError(
            "unsupported_algorithm",
            f"PAYPAL-AUTH-ALGO must be {AUTH_ALGO}, got {transmission.auth_algo!r}",
        )
    return transmission


def transmission_time(value: str) -> datetime:
    """The instant PAYPAL-TRANSMISSION-TIME names; ``malformed_header`` unless it is an RFC 3339
    date-time with an offset (as PayPal sends it, e.g. ``2017-03-30T20:04:05Z``)."""
    match = _TRANSMISSION_TIME.fullmatch(value)
    try:
        if match is None:
            raise ValueError
        year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
        if not zulu and (int(off_h) > 23 or int(off_m) > 59):
            raise ValueError
        offset = timedelta(0) if zulu else timedelta(hours=int(off_h), minutes=int(off_m))
        zone = timezone(-offset if sign == "-" else offset)
        micros = int((fraction or "0").ljust(6, "0")[:6])
        when = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                        micros, tzinfo=zone)
        return when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise VerificationError(
            "malformed_header",
            f"PAYPAL-TRANSMISSION-TIME {value[:64]!r} is not a date-time like 2017-03-30T20:04:05Z",
        ) from None


def check_transmission_time(value: str, now: datetime, tolerance: int) -> None:
    """Refuse a transmission time more than ``tolerance`` seconds before or after ``now``.

    Exactly ``tolerance`` seconds either way is accepted, as Stripe's check accepts it.
    """
    sent = transmission_time(value)
    if now - sent > timedelta(seconds=tolerance):
        raise VerificationError(
            "stale_transmission",
            f"PAYPAL-TRANSMISSION-TIME {value} is more than {tolerance} seconds old",
        )
    if sent - now > timedelta(seconds=tolerance):
        raise VerificationError(
            "future_transmission",
            f"PAYPAL-TRANSMISSION-TIME {value} is more than {tolerance} seconds ahead",
        )


def check_cert_url(url: str) -> None:
    """Refuse any certificate URL that is not https://<PayPal API host>/v1/notifications/certs/<id>.

    The checks are deliberately stricter than URL syntax needs: printable ASCII only (which rules
    out IDNA lookalikes, whitespace and control characters), and no ``\\``, ``%``, ``@``, ``?`` or
    ``#`` anywhere, so that no parser can disagree with ours about which host is meant. The host
    is compared as the whole netloc, which also refuses ports, userinfo, trailing dots and IPs.
    """
    if not all("!" <= ch <= "~" for ch in url) or any(ch in url for ch in "\\%@?#[]"):
        raise _url_refused(url, "holds a character that is not allowed")
    try:
        parts = urlsplit(url)
    except ValueError:  # urlsplit raises on some malformed netlocs; refuse, never crash
        raise _url_refused(url, "is not a URL") from None
    if parts.scheme != "https" or not url.startswith("https://"):
        raise _url_refused(url, "is not https")
    if parts.netloc not in CERT_HOSTS:
        raise _url_refused(url, "is not on a PayPal API host")
    if not parts.path.startswith(CERT_PATH_PREFIX):
        raise _url_refused(url, f"is not under {CERT_PATH_PREFIX}")
    if not _CERT_ID.fullmatch(parts.path[len(CERT_PATH_PREFIX) :]):
        raise _url_refused(url, "does not end in a certificate id")


def _url_refused(url: str, why: str) -> VerificationError:
    return VerificationError("cert_url_not_allowed", f"PAYPAL-CERT-URL {url[:200]!r} {why}")


def signed_message(transmission: Transmission, webhook_id: str, raw_body: bytes) -> bytes:
    """The exact bytes PayPal signs; the CRC is over the raw body, never re-serialised JSON."""
    crc = zlib.crc32(raw_body) & 0xFFFFFFFF
    t = transmission
    return f"{t.transmission_id}|{t.transmission_time}|{webhook_id}|{crc}".encode()


def cert_cache_path(cache_dir: Path, cert_url: str) -> Path:
    """Where a certificate fetched from ``cert_url`` is kept on disk (shared across processes)."""
    return cache_dir / f"{hashlib.sha256(cert_url.encode()).hexdigest()}.pem"


@dataclass(frozen=True)
class _TrustedKey:
    """A certificate's public key that passed every check, good until ``valid_until``."""

    public_key: rsa.RSAPublicKey
    valid_until: datetime


class PayPalVerifier:
    """Verifies PayPal webhooks locally. Safe to share between threads.

    ``ca_pem`` holds the trust anchors. ``intermediates_pem`` (the bundled DigiCert intermediates
    when None) is only offered to path building, after any intermediates the certificate URL
    served: it never makes a certificate trusted that does not chain to ``ca_pem``. ``clock``
    is read once per delivery, for the transmission-time tolerance and certificate validity alike.
    """

    def __init__(
        self,
        ca_pem: bytes,
        *,
        intermediates_pem: bytes | None = None,
        cache_dir: Path | None = None,
        timeout: float = 5.0,
        session: requests.Session | None = None,
        clock: Callable[[], datetime] | None = None,
        tolerance: int = DEFAULT_TOLERANCE,
    ) -> None:
        if tolerance < 0:
            raise ValueError(f"tolerance must not be negative, got {tolerance}")
        self._store = Store(x509.load_pem_x509_certificates(ca_pem))
        if intermediates_pem is None:
            intermediates_pem = load_bundled_intermediates()
        self._intermediates = (
            x509.load_pem_x509_certificates(intermediates_pem) if intermediates_pem.strip() else []
        )
        self._tolerance = tolerance
        self._cache_dir = cache_dir
        self._timeout = timeout
        self._session = session or requests.Session()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._trusted: dict[str, _TrustedKey] = {}
        self._cache_lock = threading.Lock()
        # One fetch per URL at a time, without one slow URL holding up the others. A fixed set
        # of stripes rather than a lock per URL, so sender-chosen URLs cannot grow memory.
        self._fetch_locks = [threading.Lock() for _ in range(_LOCK_STRIPES)]

    def verify(self, headers: Mapping[str, str], raw_body: bytes, webhook_id: str) -> None:
        """Return if PayPal signed this delivery for ``webhook_id``; raise VerificationError."""
        if not webhook_id:
            raise VerificationError("webhook_id_not_configured", "no PayPal webhook id configured")
        transmission = read_transmission(headers)
        now = self._now()
        check_transmission_time(transmission.transmission_time, now, self._tolerance)
        check_cert_url(transmission.cert_url)
        signature = _decode_signature(transmission.transmission_sig)
        public_key = self._public_key(transmission.cert_url, now)
        message = signed_message(transmission, webhook_id, raw_body)
        try:
            public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise VerificationError(
                "bad_signature", "signature does not match the body, webhook id and headers"
            ) from None

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None:  # a naive clock is taken to be UTC, as cryptography does
            now = now.replace(tzinfo=UTC)
        return now

    def _public_key(self, url: str, now: datetime) -> rsa.RSAPublicKey:
        if trusted := self._memoised(url, now):
            return trusted.public_key
        with self._fetch_locks[hash(url) % _LOCK_STRIPES]:
            if trusted := self._memoised(url, now):  # another thread got there first
                return trusted.public_key
            trusted = self._from_disk(url, now)
            if trusted is None:
                pem = self._fetch(url)
                trusted = self._check(pem, now)
                self._save_to_disk(url, pem)
            with self._cache_lock:
                self._trusted[url] = trusted
            return trusted.public_key

    def _memoised(self, url: str, now: datetime) -> _TrustedKey | None:
        with self._cache_lock:
            trusted = self._trusted.get(url)
        return trusted if trusted is not None and now <= trusted.valid_until else None

    def _from_disk(self, url: str, now: datetime) -> _TrustedKey | None:
        """A copy another process (or an earlier run) fetched; one that fails a check is ignored
        and fetched again, so a corrupt or stale file cannot wedge verification for its URL."""
        if self._cache_dir is None:
            return None
        try:
            with cert_cache_path(self._cache_dir, url).open("rb") as fh:
                pem = fh.read(MAX_CERT_BYTES + 1)
            return self._check(pem, now) if len(pem) <= MAX_CERT_BYTES else None
        except (OSError, VerificationError):
            return None

    def _save_to_disk(self, url: str, pem: bytes) -> None:
        """Keep a checked copy for other processes. Only a cache: a folder that cannot be
        written (full, read-only, not a folder) costs a fetch per process, not the delivery."""
        if self._cache_dir is not None:
            try:
                write_atomically(cert_cache_path(self._cache_dir, url), pem)
            except OSError as exc:
                log.warning("PayPal certificate %s not cached in %s: %s", url, self._cache_dir,
                            exc)

    def _fetch(self, url: str) -> bytes:
        try:
            with self._session.get(
                url, timeout=self._timeout, allow_redirects=False, stream=True
            ) as response:
                if response.status_code != 200:
                    raise _fetch_failed(url, f"HTTP {response.status_code}")
                body = b""
                for chunk in response.iter_content(chunk_size=8192):
                    body += chunk
                    if len(body) > MAX_CERT_BYTES:
                        raise _fetch_failed(url, f"larger than {MAX_CERT_BYTES} bytes")
                return body
        except requests.RequestException as exc:
            raise _fetch_failed(url, type(exc).__name__) from exc

    def _check(self, pem: bytes, now: datetime) -> _TrustedKey:
        """Parse the leaf (+ intermediates) and check name, validity and chain, in that order."""
        try:
            leaf, *served = x509.load_pem_x509_certificates(pem)
        except ValueError:
            raise VerificationError("cert_invalid", "certificate is not PEM X.509") from None
        public_key = leaf.public_key()
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise VerificationError("cert_invalid", "certificate key is not RSA")
        _check_name(leaf)
        _check_validity(leaf, now)
        chain = self._check_chain(leaf, [*served, *self._intermediates], now)
        valid_until = min(cert.not_valid_after_utc for cert in chain)
        return _TrustedKey(public_key=public_key, valid_until=valid_until)

    def _check_chain(
        self, leaf: x509.Certificate, intermediates: list[x509.Certificate], now: datetime
    ) -> list[x509.Certificate]:
        """Path validation by cryptography's own verifier (signatures, CA constraints, validity
        of every certificate in the path), rather than hand-rolled signature checks.

        The server verifier would insist on a single DNS name and the serverAuth EKU, and the
        client verifier on clientAuth; neither says anything about message signing. So CA
        certificates get the Web PKI defaults while the leaf gets ``permit_all``, and the name
        rule (any ``*.paypal.com``) is ours, in ``_check_name``.

        ``intermediates`` are candidates only: a path must end at a certificate in the store.
        """
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(now)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(),
                ee_policy=ExtensionPolicy.permit_all(),
            )
            .build_client_verifier()
        )
        try:
            return verifier.verify(leaf, intermediates).chain
        except ChainError as exc:
            raise VerificationError(
                "cert_untrusted", f"certificate does not chain to PayPal's CAs: {exc}"
            ) from None


def _decode_signature(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError("bad_signature", "PAYPAL-TRANSMISSION-SIG is not base64") from None


def _fetch_failed(url: str, why: str) -> VerificationError:
    return VerificationError("cert_fetch_failed", f"could not fetch certificate {url}: {why}")


def _check_name(leaf: x509.Certificate) -> None:
    """SAN DNS names if the certificate has them, else the subject CN (RFC 6125 order)."""
    try:
        names = leaf.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        ).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [
            str(attr.value) for attr in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        ]
    if not any(_is_paypal_name(name) for name in names):
        raise VerificationError(
            "cert_name_mismatch", f"certificate names {names[:5]} are not under *{_NAME_SUFFIX}"
        )


def _is_paypal_name(name: str) -> bool:
    name = name.lower()
    return (
        name.endswith(_NAME_SUFFIX)
        and len(name) > len(_NAME_SUFFIX)
        and re.fullmatch(r"[a-z0-9*.-]+", name) is not None
    )


def _check_validity(leaf: x509.Certificate, now: datetime) -> None:
    if now < leaf.not_valid_before_utc:
        raise VerificationError(
            "cert_not_yet_valid", f"certificate is valid from {leaf.not_valid_before_utc:%Y-%m-%d}"
        )
    if now > leaf.not_valid_after_utc:
        raise VerificationError(
            "cert_expired", f"certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}"
        )


def write_atomically(path: Path, data: bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees half a certificate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
