"""PayPal test helpers: one dev signer per session, a real-shaped event, a faked cert host."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import responses
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from gateway.signatures.paypal import PayPalVerifier
from gateway.signatures.paypal_api import VERIFY_PATH, PayPalApiVerifier
from sandbox.devcerts import DevPayPalSigner, make_signer
from service.config import PayPalSettings, PayPalVerification

WEBHOOK_ID = "8PT597110X687430LKGECATA"
SANDBOX_API_BASE = "https://api-m.sandbox.paypal.com"
TOKEN_URL = f"{SANDBOX_API_BASE}/v1/oauth2/token"
VERIFY_URL = f"{SANDBOX_API_BASE}{VERIFY_PATH}"

# Shaped like a sandbox PAYMENT.CAPTURE.REFUNDED delivery (compact, as PayPal sends it).
REFUND_EVENT = (
    b'{"id":"WH-2WR32451HC0233532-67976317FL4543714","event_version":"1.0",'
    b'"create_time":"2024-03-01T10:15:00.123Z","resource_type":"refund",'
    b'"resource_version":"2.0","event_type":"PAYMENT.CAPTURE.REFUNDED",'
    b'"summary":"A EUR 4.99 EUR capture payment was refunded",'
    b'"resource":{"id":"1Y107995YT783435V","status":"COMPLETED",'
    b'"amount":{"currency_code":"EUR","value":"4.99"},'
    b'"invoice_id":"INV-2024-0042","custom_id":"order-7731",'
    b'"create_time":"2024-03-01T10:14:58Z","update_time":"2024-03-01T10:14:58Z",'
    b'"links":[{"href":"https://api.sandbox.paypal.com/v2/payments/refunds/1Y107995YT783435V",'
    b'"rel":"self","method":"GET"}]},'
    b'"links":[{"href":"https://api.sandbox.paypal.com/v1/notifications/webhooks-events/'
    b'WH-2WR32451HC0233532-67976317FL4543714","rel":"self","method":"GET"}]}'
)


@functools.cache
def shared_signer() -> DevPayPalSigner:
    """The session's dev signer; key generation is too slow to repeat per test."""
    return make_signer()


def serve_cert(rsps: responses.RequestsMock, signer: DevPayPalSigner) -> None:
    """Answer GET ``signer.cert_url`` with the signer's certificate chain, as PayPal would."""
    rsps.get(signer.cert_url, body=signer.cert_pem, content_type="application/x-pem-file")


def verifier_at(signer: DevPayPalSigner, now: datetime, **kwargs: Any) -> PayPalVerifier:
    """A local verifier trusting ``signer``'s CA, whose clock always reads ``now``."""
    return PayPalVerifier(signer.ca_pem, clock=lambda: now, **kwargs)


def sent_at(signer: DevPayPalSigner, when: datetime) -> dict[str, str]:
    """The headers of ``REFUND_EVENT`` for ``WEBHOOK_ID``, transmitted at ``when``."""
    return signer.headers(REFUND_EVENT, WEBHOOK_ID, transmission_time=when)


class RecordingSession(requests.Session):
    """A real session that records the URL and timeout of every request it sends."""

    def __init__(self) -> None:
        super().__init__()
        self.timeouts: list[tuple[str, object]] = []

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any
                ) -> requests.Response:
        self.timeouts.append((str(url), kwargs.get("timeout")))
        return super().request(method, url, *args, **kwargs)


def sandbox_api_verifier(session: requests.Session | None = None) -> PayPalApiVerifier:
    """A verifier asking PayPal's sandbox API about ``WEBHOOK_ID``, with a 2 s timeout."""
    settings = PayPalSettings(
        client_id="client-id",
        client_secret="client-secret",
        webhook_id=WEBHOOK_ID,
        api_base=SANDBOX_API_BASE,
        verification=PayPalVerification.API,
    )
    return PayPalApiVerifier(settings, timeout=2.0, session=session)


def fake_paypal(rsps: responses.RequestsMock, *verdicts: str | int, token: str = "A21AAF-token"
                ) -> None:
    """Fake PayPal's OAuth endpoint and one verify answer per verdict (a status or HTTP code)."""
    rsps.post(TOKEN_URL, json={"access_token": token, "token_type": "Bearer", "expires_in": 32400})
    for verdict in verdicts:
        if isinstance(verdict, int):
            rsps.post(VERIFY_URL, status=verdict, json={"name": "INTERNAL_SERVICE_ERROR"})
        else:
            rsps.post(VERIFY_URL, json={"verification_status": verdict})


def paid_after_it_ended(scenario: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """A PayPal subscription cancelled a day into its first period, and the sale of its second
    period that PayPal took all the same (003 §1.7b's overpayment): (cancelled, sale) events."""
    from sandbox import samples

    cancelled = samples.paypal_event("BILLING.SUBSCRIPTION.CANCELLED", scenario)
    ended = datetime.fromtimestamp(scenario.period(1)[0] + 86400, UTC)
    cancelled["resource"]["status_update_time"] = cancelled["resource"]["update_time"] = (
        ended.isoformat().replace("+00:00", "Z"))
    return cancelled, samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=2)


def post_signed(base: str, merchant: str, webhook_id: str, event: dict[str, Any]) -> int:
    """POST ``event`` to a running gateway, signed as PayPal would; returns the status."""
    raw = json.dumps(event).encode()
    headers = {**shared_signer().headers(raw, webhook_id), "Content-Type": "application/json"}
    return requests.post(f"{base}/webhooks/{merchant}/paypal", data=raw, headers=headers,
                         timeout=10).status_code


def dispute_event(sale_id: str, status: str, outcome: str | None = None,
                    at: str = "2026-02-10T10:00:00Z") -> dict[str, Any]:
    """A CUSTOMER.DISPUTE.* event as PayPal's Disputes API v1 sends it."""
    resource: dict[str, Any] = {
        "dispute_id": "PP-D-4242", "create_time": "2026-02-09T10:00:00Z", "update_time": at,
        "disputed_transactions": [{"seller_transaction_id": sale_id,
                                   "buyer_transaction_id": "BUYER-TXN-1"}],
        "reason": "MERCHANDISE_OR_SERVICE_NOT_RECEIVED", "status": status,
        "dispute_amount": {"currency_code": "USD", "value": "120.00"},
        "dispute_life_cycle_stage": "CHARGEBACK", "dispute_channel": "EXTERNAL",
    }
    if outcome:
        resource["dispute_outcome"] = {"outcome_code": outcome}
    kind = "RESOLVED" if status == "RESOLVED" else "CREATED"
    return {"id": f"WH-DISPUTE-{status}-{outcome}", "event_version": "1.0",
            "create_time": at, "resource_type": "dispute",
            "event_type": f"CUSTOMER.DISPUTE.{kind}", "summary": "A dispute was updated",
            "resource": resource, "links": []}


def deliver(client: Any, event: dict[str, Any], merchant: str = "theopenhost",
            webhook_id: str = "WH-THEOPENHOST-SANDBOX-003") -> None:
    """POST ``event`` to the app under test, signed as PayPal would; asserts the 200."""
    raw = json.dumps(event).encode()
    resp = client.post(f"/webhooks/{merchant}/paypal", data=raw,
                       headers=shared_signer().headers(raw, webhook_id),
                       content_type="application/json")
    assert resp.status_code == 200, resp.get_data(as_text=True)


def sale_at(scenario: Any, cycle: int, at: datetime, sale_id: str | None = None
            ) -> dict[str, Any]:
    """The cycle's completed sale, paid at ``at`` (the sale's own time, not only the event's);
    ``sale_id`` makes it another sale of that cycle (a manual payment, say)."""
    from sandbox import samples

    stamp = at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    extra = {"id": sale_id, "event_id": f"WH-{sale_id}"} if sale_id else {}
    event = samples.paypal_event("PAYMENT.SALE.COMPLETED", scenario, cycle=cycle,
                                 create_time=stamp, update_time=stamp, **extra)
    event["resource"]["create_time"] = stamp
    return event


# --- Certificates built by hand, for what the dev signer cannot make ---------------------------


def self_made_ca(subject: x509.Name, issuer: x509.Name, key: rsa.RSAPrivateKey, when: datetime,
                 serial: int | None = None) -> x509.Certificate:
    """A CA certificate valid from two days before ``when`` to 60 days after, signed by ``key``."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(when - timedelta(days=2))
        .not_valid_after(when + timedelta(days=60))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )


def leaf_issued_by(issuer: x509.Certificate,
                   leaf_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
                   signing_key: rsa.RSAPrivateKey, when: datetime,
                   name: str = "messageverificationcerts.paypal.com",
                   alt_names: list[str] | None = None) -> x509.Certificate:
    """A leaf with CN ``name`` and the DNS names ``alt_names`` (``[name]`` when None; none at
    all, and no subjectAltName, when empty) that claims ``issuer`` (its name and key id), signed
    by ``signing_key``."""
    ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(issuer.subject)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(when - timedelta(days=1))
        .not_valid_after(when + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                       critical=False)
    )
    dns_names = [name] if alt_names is None else alt_names
    if dns_names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def pem_of(*certs: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def signed_headers(key: rsa.RSAPrivateKey, url: str, when: datetime) -> dict[str, str]:
    """The REFUND_EVENT signed with ``key`` as PayPal signs, its certificate at ``url``."""
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    signer = DevPayPalSigner(ca_pem=b"", cert_pem=b"", key_pem=key_pem, cert_url=url)
    return signer.headers(REFUND_EVENT, WEBHOOK_ID, transmission_time=when)
