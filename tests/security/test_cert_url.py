"""PAYPAL-CERT-URL tricks: each is refused before any fetch, in the verifier and at the webhook.

The URL arrives with the request, so it is the sender's choice; a gateway that fetched it would
be a request forgery relay into our network. ``responses`` with nothing registered refuses and
records every HTTP request, so ``len(calls) == 0`` proves nothing was fetched.
"""

from __future__ import annotations

import pytest
import responses
from sqlalchemy import func, select

from gateway.signatures.paypal import PayPalVerifier, check_cert_url
from ledger.models import InboxEvent
from service.bootstrap import Container
from service.errors import VerificationError
from tests.security.fuzz import TALLY
from tests.support.delivery import PAYPAL_MERCHANT, PAYPAL_WEBHOOK_ID
from tests.support.paypal import REFUND_EVENT, shared_signer

P = "/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270"
H = "api.paypal.com"

TRICKS = {
    # other hosts and lookalikes
    "other host": f"https://evil.example{P}",
    "www.paypal.com": f"https://www.paypal.com{P}",
    "paypal.com": f"https://paypal.com{P}",
    "suffix lookalike": f"https://api.paypal.com.evil.com{P}",
    "prefix lookalike": f"https://evilpaypal.com{P}",
    "dash lookalike": f"https://api-paypal.com{P}",
    "sub-subdomain": f"https://x.api.paypal.com{P}",
    "sandbox lookalike": f"https://api.sandbox.paypal.com.evil.com{P}",
    "upper-case host": f"https://API.PAYPAL.COM{P}",
    "trailing dot": f"https://api.paypal.com.{P}",
    "two trailing dots": f"https://api.paypal.com..{P}",
    "leading dot": f"https://.api.paypal.com{P}",
    # userinfo
    "userinfo naming paypal": f"https://api.paypal.com@evil.com{P}",
    "userinfo with password": f"https://api.paypal.com:443@evil.com{P}",
    "userinfo on paypal": f"https://user:pass@api.paypal.com{P}",
    "empty userinfo": f"https://@api.paypal.com{P}",
    "encoded at": f"https://api.paypal.com%40evil.com{P}",
    # IP literals
    "loopback": f"https://127.0.0.1{P}",
    "loopback short": f"https://127.1{P}",
    "localhost": f"https://localhost{P}",
    "localhost dot": f"https://localhost.{P}",
    "metadata": f"https://169.254.169.254{P}",
    "metadata http": "http://169.254.169.254/latest/meta-data/",
    "metadata decimal": f"https://2852039166{P}",
    "metadata octal": f"https://0251.0376.0251.0376{P}",
    "metadata hex": f"https://0xa9fea9fe{P}",
    "decimal loopback": f"https://2130706433{P}",
    "octal loopback": f"https://0177.0.0.1{P}",
    "zero address": f"https://0.0.0.0{P}",
    "private range": f"https://10.0.0.1{P}",
    "ipv6 loopback": f"https://[::1]{P}",
    "ipv6 mapped": f"https://[::ffff:169.254.169.254]{P}",
    "ipv6 metadata": f"https://[fd00:ec2::254]{P}",
    "ipv6 zone": f"https://[fe80::1%25eth0]{P}",
    "unbalanced bracket": f"https://[api-m.paypal.com{P}",
    "bracketed name": f"https://[api.paypal.com]{P}",
    # schemes
    "http": f"http://{H}{P}",
    "upper-case scheme": f"HTTPS://{H}{P}",
    "file": "file:///etc/passwd",
    "file on host": f"file://{H}{P}",
    "ftp": f"ftp://{H}{P}",
    "gopher": "gopher://127.0.0.1:6379/_FLUSHALL",
    "data": "data:text/plain;base64,LS0tLS1CRUdJTg==",
    "dict": "dict://127.0.0.1:6379/info",
    "ldap": f"ldap://{H}{P}",
    "javascript": "javascript:alert(1)",
    "scheme-relative": f"//{H}{P}",
    "no scheme": f"{H}{P}",
    "https without slashes": f"https:{H}{P}",
    "https one slash": f"https:/{H}{P}",
    "https three slashes": f"https:///{H}{P}",
    "leading space": f" https://{H}{P}",
    # ports
    "port 443": f"https://{H}:443{P}",
    "port 8443": f"https://{H}:8443{P}",
    "port 80": f"https://{H}:80{P}",
    "empty port": f"https://{H}:{P}",
    "redis port": f"https://{H}:6379{P}",
    "huge port": f"https://{H}:99999999{P}",
    # encodings and separators
    "percent host": f"https://api%2Epaypal%2Ecom{P}",
    "percent path": f"https://{H}/v1/notifications/certs/%2e%2e/%2e%2e/oauth2/token",
    "double encoded": f"https://{H}/v1/notifications/certs/%252e%252e/x",
    "backslash userinfo": f"https://{H}\\@evil.com{P}",
    "backslash path": f"https://evil.com\\{H}{P}",
    "backslash separators": f"https:\\\\{H}{P}",
    "fragment host": f"https://evil.com#@{H}{P}",
    "question host": f"https://evil.com?@{H}{P}",
    "query": f"https://{H}{P}?redirect=https://evil.com",
    "fragment": f"https://{H}{P}#x",
    "semicolon params": f"https://{H}{P};x=1",
    "path traversal": f"https://{H}/v1/notifications/certs/../../oauth2/token",
    "dot segment": f"https://{H}/v1/notifications/certs/./CERT-1",
    "nested path": f"https://{H}{P}/more",
    "no cert id": f"https://{H}/v1/notifications/certs/",
    "other path": f"https://{H}/v1/oauth2/token",
    "case-changed path": f"https://{H}/V1/notifications/certs/CERT-1",
    "double slash path": f"https://{H}//v1/notifications/certs/CERT-1",
    # unicode and IDNA
    "dotless i": f"https://api.paypa\u0131.com{P}",
    "cyrillic a": f"https://\u0430pi.paypal.com{P}",
    "fullwidth dot": f"https://api\uff0epaypal.com{P}",
    "ideographic dot": f"https://api\u3002paypal.com{P}",
    "punycode": f"https://xn--pypal-4ve.com{P}",
    "zero-width space": f"https://api.pay\u200bpal.com{P}",
    "right-to-left override": f"https://\u202emoc.lapyap.ipa{P}",
    "combining char": f"https://api.paypal.co\u0301m{P}",
    # whitespace and control characters
    "tab": f"https://{H}\t{P}",
    "newline": f"https://{H}{P}\n",
    "carriage return": f"https://{H}\r{P}",
    "nul": f"https://{H}\x00.evil.com{P}",
    "space in host": f"https://api.paypal.com {P}",
    # length
    "very long id": f"https://{H}/v1/notifications/certs/{'A' * 5000}",
    "very long host": f"https://{'a' * 3000}.paypal.com{P}",
    "empty": "",
    "only scheme": "https://",
}


@pytest.fixture
def no_network():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.mark.parametrize("url", TRICKS.values(), ids=TRICKS.keys())
def test_a_cert_url_trick_is_refused_by_the_verifier_without_a_fetch(no_network, tmp_path, url):
    """The check and the verifier both refuse it, and no request leaves the process."""
    TALLY["certificate URL tricks"] += 1
    with pytest.raises(VerificationError) as info:
        check_cert_url(url)
    assert info.value.code == "cert_url_not_allowed"
    signer = shared_signer()
    verifier = PayPalVerifier(signer.ca_pem, cache_dir=tmp_path)
    headers = signer.headers(REFUND_EVENT, PAYPAL_WEBHOOK_ID) | {"PAYPAL-CERT-URL": url}
    with pytest.raises(VerificationError) as info:
        verifier.verify(headers, REFUND_EVENT, PAYPAL_WEBHOOK_ID)
    assert info.value.code in {"cert_url_not_allowed", "missing_header"}  # "" is no header
    assert len(no_network.calls) == 0


def _inbox_count(container: Container) -> int:
    with container.sessions() as s:
        return s.scalar(select(func.count()).select_from(InboxEvent)) or 0


def test_every_trick_at_the_webhook_gets_400_stores_nothing_and_fetches_nothing(
        client, container, no_network):
    """A validly signed delivery whose certificate URL is a trick: 400 for each, no request."""
    signer = shared_signer()
    sendable = {k: v for k, v in TRICKS.items() if not any(c in v for c in "\r\n\x00")}
    for name, url in sendable.items():
        TALLY["certificate URL tricks at the webhook"] += 1
        headers = signer.headers(REFUND_EVENT, PAYPAL_WEBHOOK_ID) | {"PAYPAL-CERT-URL": url}
        resp = client.post(f"/webhooks/{PAYPAL_MERCHANT}/paypal", data=REFUND_EVENT,
                           headers=headers, content_type="application/json")
        assert resp.status_code == 400, name
        assert resp.json["error"]["code"] in {"cert_url_not_allowed", "missing_header"}, name
    assert len(no_network.calls) == 0
    assert _inbox_count(container) == 0


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("location", [
    "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
    "http://127.0.0.1:6379/", "file:///etc/passwd",
    "https://api.sandbox.paypal.com/v1/notifications/certs/CERT-OTHER"])
def test_a_redirect_from_an_allowed_url_is_not_followed(client, container, no_network, status,
                                                        location):
    """PayPal's host answering 3xx is a failed fetch (503: retry later); Location is never asked."""
    signer = shared_signer()
    url = f"https://api.paypal.com/v1/notifications/certs/CERT-REDIRECT-{status}"
    no_network.get(url, status=status, headers={"Location": location})
    headers = signer.headers(REFUND_EVENT, PAYPAL_WEBHOOK_ID) | {"PAYPAL-CERT-URL": url}
    resp = client.post(f"/webhooks/{PAYPAL_MERCHANT}/paypal", data=REFUND_EVENT,
                       headers=headers, content_type="application/json")
    assert resp.status_code == 503 and resp.json["error"]["code"] == "cert_fetch_failed"
    assert [c.request.url for c in no_network.calls] == [url]
    assert _inbox_count(container) == 0


@pytest.mark.parametrize(("url", "why"), [
    (f"https://{H}/v1/notifications/certs/CERT !", "holds a character that is not allowed"),
    (f"https://{H}/v1/notifications/certs/CERT\x7f", "holds a character that is not allowed"),
    (f"https://{H}/v1/notifications/certs/CERT-!", "does not end in a certificate id"),
    (f"https://{H}/v1/notifications/certs/CERT-~", "does not end in a certificate id"),
    (f"http://{H}{P}", "is not https"),
    (f"HTTPS://{H}{P}", "is not https"),
    (f"https://evil.example{P}", "is not on a PayPal API host"),
    (f"https://{H}/v2/notifications/certs/CERT-1", "is not under /v1/notifications/certs/"),
], ids=["space", "delete", "'!' (the lowest allowed)", "'~' (the highest allowed)", "http",
        "upper-case scheme", "other host", "other path"])
def test_a_refused_cert_url_says_which_check_it_failed(url, why):
    """The reason names the first check the URL fails: the printable-ASCII range is '!' to '~'
    inclusive, so a URL holding either is judged by the later checks."""
    with pytest.raises(VerificationError) as info:
        check_cert_url(url)
    assert (info.value.code, str(info.value)) == (
        "cert_url_not_allowed", f"PAYPAL-CERT-URL {url!r} {why}")
