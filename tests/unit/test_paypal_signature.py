"""PayPal webhook verification: locally (certificate fetched, cached, checked) and via the API."""

from __future__ import annotations

import json
import re
import tempfile
import threading
import tracemalloc
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import requests
import responses
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.signatures.paypal import (
    _LOCK_STRIPES,
    CERT_HOSTS,
    MAX_CERT_BYTES,
    PayPalVerifier,
    cert_cache_path,
    check_cert_url,
    load_bundled_ca,
)
from sandbox.devcerts import (
    load_or_create_dev_signer,
    make_signer,
    seed_cert_cache,
)
from service.errors import VerificationError
from tests.support.paypal import (
    REFUND_EVENT,
    TOKEN_URL,
    VERIFY_URL,
    WEBHOOK_ID,
    RecordingSession,
    fake_paypal,
    serve_cert,
)

HEADER_NAMES = [
    "PAYPAL-TRANSMISSION-ID",
    "PAYPAL-TRANSMISSION-TIME",
    "PAYPAL-TRANSMISSION-SIG",
    "PAYPAL-CERT-URL",
    "PAYPAL-AUTH-ALGO",
]
GOOD_CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270"


def rejection(verifier, headers, body=REFUND_EVENT, webhook_id=WEBHOOK_ID) -> str:
    """Run a verification that must fail; return its code."""
    return refused(verifier, headers, body, webhook_id)[0]


def refused(verifier, headers, body=REFUND_EVENT, webhook_id=WEBHOOK_ID) -> tuple[str, str]:
    """Run a verification that must fail; return its code and message."""
    with pytest.raises(VerificationError) as caught:
        verifier.verify(headers, body, webhook_id)
    return caught.value.code, caught.value.message


def clock_at(when: datetime):
    return lambda: when


# --- Local verification: the happy path and the caches -------------------------------------------


def test_an_event_signed_by_a_certificate_chaining_to_the_ca_verifies(signer, rsps, verifier):
    """A correctly signed event passes, fetching the certificate without following redirects."""
    serve_cert(rsps, signer)
    verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    assert [call.request.url for call in rsps.calls] == [signer.cert_url]


def test_the_certificate_is_fetched_once_and_then_served_from_memory(signer, rsps, verifier):
    """A second event naming the same certificate URL makes no second fetch."""
    serve_cert(rsps, signer)
    for _ in range(3):
        verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    assert len(rsps.calls) == 1


def test_a_fresh_verifier_reads_the_certificate_from_the_disk_cache(signer, rsps, tmp_path):
    """A restarted process reuses the PEM an earlier one fetched, without fetching again; the
    cache folder (and the folders above it) are made when the first certificate is kept."""
    serve_cert(rsps, signer)
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    cache = tmp_path / "data" / "paypal-certs"
    PayPalVerifier(signer.ca_pem, cache_dir=cache).verify(headers, REFUND_EVENT, WEBHOOK_ID)
    assert cert_cache_path(cache, signer.cert_url).read_bytes() == signer.cert_pem

    PayPalVerifier(signer.ca_pem, cache_dir=cache).verify(headers, REFUND_EVENT, WEBHOOK_ID)
    assert len(rsps.calls) == 1


def test_a_certificate_is_written_beside_its_cache_entry_not_in_the_temporary_folder(
        signer, rsps, tmp_path, monkeypatch):
    """Written to a file in the cache folder and renamed into place (atomic on one file
    system): a temporary folder elsewhere, unusable here, plays no part."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    serve_cert(rsps, signer)
    cache = tmp_path / "paypal-certs"
    PayPalVerifier(signer.ca_pem, cache_dir=cache).verify(
        signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    assert [p.name for p in cache.iterdir()] == [cert_cache_path(cache, signer.cert_url).name]


def test_a_corrupt_disk_cache_entry_is_replaced_by_a_fresh_fetch(signer, rsps, tmp_path):
    """A damaged cached PEM is ignored, fetched again and overwritten."""
    seed_cert_cache(tmp_path, signer.cert_url, b"-----BEGIN CERTIFICATE-----\ngarbage\n")
    serve_cert(rsps, signer)
    verifier = PayPalVerifier(signer.ca_pem, cache_dir=tmp_path)
    verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    assert cert_cache_path(tmp_path, signer.cert_url).read_bytes() == signer.cert_pem


def test_an_oversized_disk_cache_entry_is_read_no_further_than_a_certificate_can_be_long(
        signer, rsps, tmp_path):
    """A cache file of 64 MiB (sparse: nothing is written) is refused after reading one byte
    more than MAX_CERT_BYTES, never loaded whole, and the certificate is fetched again."""
    path = cert_cache_path(tmp_path, signer.cert_url)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.truncate(64 * 2**20)
    serve_cert(rsps, signer)
    verifier = PayPalVerifier(signer.ca_pem, cache_dir=tmp_path)
    tracemalloc.start()
    try:
        verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20
    assert len(rsps.calls) == 1
    assert path.read_bytes() == signer.cert_pem


def test_a_certificate_planted_in_the_disk_cache_is_still_checked(signer, rsps, tmp_path):
    """A cached PEM from another CA is not trusted just because it is on disk."""
    intruder = make_signer(cert_url=signer.cert_url)
    seed_cert_cache(tmp_path, signer.cert_url, intruder.cert_pem)
    rsps.get(signer.cert_url, status=404)
    verifier = PayPalVerifier(signer.ca_pem, cache_dir=tmp_path)
    headers = intruder.headers(REFUND_EVENT, WEBHOOK_ID)
    assert rejection(verifier, headers) == "cert_fetch_failed"


def test_a_certificate_sent_with_its_intermediate_verifies(rsps):
    """The fetched PEM may hold the leaf followed by the issuing intermediate."""
    chained = make_signer(with_intermediate=True)
    assert len(x509.load_pem_x509_certificates(chained.cert_pem)) == 2
    serve_cert(rsps, chained)
    verifier = PayPalVerifier(chained.ca_pem)
    verifier.verify(chained.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)


def test_header_names_are_matched_in_any_case(signer, rsps, verifier):
    """Headers arrive as Paypal-Transmission-Id or paypal-transmission-id; both work."""
    serve_cert(rsps, signer)
    headers = {k.lower(): v for k, v in signer.headers(REFUND_EVENT, WEBHOOK_ID).items()}
    verifier.verify(headers, REFUND_EVENT, WEBHOOK_ID)


def test_concurrent_first_events_fetch_the_certificate_once(signer, rsps, verifier):
    """Threads racing on a cold cache share one fetch: those that arrive while it is under way
    wait for it and take its certificate, rather than fetching again once they get the lock."""
    asked, release = threading.Event(), threading.Event()

    def answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        asked.set()
        release.wait(10)
        return 200, {}, signer.cert_pem

    rsps.add_callback(responses.GET, signer.cert_url, callback=answer)
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            verifier.verify(headers, REFUND_EVENT, WEBHOOK_ID)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    threads[0].start()
    assert asked.wait(5)  # the first is fetching; the others come while it does
    for thread in threads[1:]:
        thread.start()
    release.wait(0.5)  # time for them to queue behind the fetch
    release.set()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert len(rsps.calls) == 1


def test_a_slow_certificate_host_holds_up_only_the_verifications_naming_its_url(signer, rsps,
                                                                               verifier):
    """While one certificate's fetch hangs, a first event naming another certificate (one whose
    URL falls on another of the fetch locks) is verified at once; the first completes after."""
    slow_url = signer.cert_url
    fast_url = next(url for url in (f"{slow_url}-{n}" for n in range(100))
                    if hash(url) % _LOCK_STRIPES != hash(slow_url) % _LOCK_STRIPES)
    fast = replace(signer, cert_url=fast_url)
    asked, release = threading.Event(), threading.Event()

    def slow_answer(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        asked.set()
        release.wait(10)
        return 200, {}, signer.cert_pem

    rsps.add_callback(responses.GET, slow_url, callback=slow_answer)
    serve_cert(rsps, fast)
    outcome: list[BaseException | None] = []

    def verify_slow() -> None:
        try:
            verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    slow_thread = threading.Thread(target=verify_slow)
    slow_thread.start()
    try:
        assert asked.wait(5)  # the slow fetch is under way, holding its lock
        verified = threading.Thread(
            target=verifier.verify, args=(fast.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT,
                                          WEBHOOK_ID))
        verified.start()
        verified.join(5)
        assert not verified.is_alive(), "held up behind another URL's fetch"
        assert not outcome  # the slow one is still waiting for its host
    finally:
        release.set()
        slow_thread.join(10)
    assert outcome == [None]


# --- Local verification: what is signed ---------------------------------------------------------


def test_a_tampered_body_is_rejected(signer, rsps, verifier):
    """Changing one byte of the body breaks the CRC and so the signature."""
    serve_cert(rsps, signer)
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    tampered = REFUND_EVENT.replace(b'"4.99"', b'"49.9"')
    assert refused(verifier, headers, body=tampered) == (
        "bad_signature", "signature does not match the body, webhook id and headers")


def test_re_serialised_json_is_not_accepted_in_place_of_the_raw_bytes(signer, rsps, verifier):
    """The same JSON with different spacing is a different body."""
    serve_cert(rsps, signer)
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    reformatted = json.dumps(json.loads(REFUND_EVENT), indent=1).encode()
    assert rejection(verifier, headers, body=reformatted) == "bad_signature"


def test_an_event_signed_for_another_webhook_id_is_rejected(signer, rsps, verifier):
    """The webhook id is only inside the signed string, so a mismatch is a bad signature."""
    serve_cert(rsps, signer)
    headers = signer.headers(REFUND_EVENT, "WH-SOMEONE-ELSE")
    assert rejection(verifier, headers) == "bad_signature"


def test_a_changed_transmission_id_is_rejected(signer, rsps, verifier):
    """Every header that is signed is bound by the signature."""
    serve_cert(rsps, signer)
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID) | {"PAYPAL-TRANSMISSION-ID": "other"}
    assert rejection(verifier, headers) == "bad_signature"


def test_a_signature_from_another_message_is_rejected(signer, rsps, verifier):
    """A valid signature copied from a different event does not verify this one."""
    serve_cert(rsps, signer)
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    other_sig = signer.headers(b"{}", WEBHOOK_ID)["PAYPAL-TRANSMISSION-SIG"]
    headers["PAYPAL-TRANSMISSION-SIG"] = other_sig
    assert rejection(verifier, headers) == "bad_signature"


def test_a_signature_that_is_not_base64_is_rejected_without_a_fetch(signer, rsps, verifier):
    """A garbled signature fails before the certificate is fetched."""
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID) | {"PAYPAL-TRANSMISSION-SIG": "not base64!"}
    assert rejection(verifier, headers) == "bad_signature"
    assert len(rsps.calls) == 0


@pytest.mark.parametrize("junk", ["!", " ", "\n", "*"], ids=["!", "space", "newline", "*"])
def test_a_good_signature_with_a_character_outside_base64_in_it_is_refused(signer, rsps,
                                                                           verifier, junk):
    """Decoding is strict: a lenient decoder would drop the stray character and accept the
    signature; the header must be exactly PayPal's base64."""
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    sig = headers["PAYPAL-TRANSMISSION-SIG"]
    headers["PAYPAL-TRANSMISSION-SIG"] = sig[:20] + junk + sig[20:]
    with pytest.raises(VerificationError) as caught:
        verifier.verify(headers, REFUND_EVENT, WEBHOOK_ID)
    assert (caught.value.code, str(caught.value)) == (
        "bad_signature", "PAYPAL-TRANSMISSION-SIG is not base64")
    assert len(rsps.calls) == 0


@pytest.mark.parametrize("algo", ["SHA1withRSA", "sha256withrsa", "SHA256withECDSA", "none"])
def test_an_algorithm_other_than_sha256_with_rsa_is_rejected(signer, rsps, verifier, algo):
    """Only SHA256withRSA is accepted, spelt exactly as PayPal spells it."""
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID) | {"PAYPAL-AUTH-ALGO": algo}
    assert refused(verifier, headers) == (
        "unsupported_algorithm", f"PAYPAL-AUTH-ALGO must be SHA256withRSA, got {algo!r}")
    assert len(rsps.calls) == 0


@pytest.mark.parametrize("missing", HEADER_NAMES)
def test_a_missing_header_is_rejected_without_a_fetch(signer, rsps, verifier, missing):
    """Each of the five PayPal headers is required, and named as PayPal spells it."""
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    del headers[missing]
    assert refused(verifier, headers) == ("missing_header", f"missing header {missing}")
    assert len(rsps.calls) == 0


def test_a_transmission_id_is_at_most_255_characters(signer, rsps, verifier):
    """The inbox's column holds 255: one that long is verified, one longer refused unfetched."""
    serve_cert(rsps, signer)
    verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID, transmission_id="t" * 255),
                    REFUND_EVENT, WEBHOOK_ID)
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID, transmission_id="t" * 256)
    assert refused(verifier, headers) == (
        "malformed_header", "PAYPAL-TRANSMISSION-ID is longer than 255 characters")
    assert len(rsps.calls) == 1


def test_an_empty_header_counts_as_missing(signer, rsps, verifier):
    """A header present with no value is no better than an absent one."""
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID) | {"PAYPAL-TRANSMISSION-ID": " "}
    assert rejection(verifier, headers) == "missing_header"


def test_an_unconfigured_webhook_id_is_rejected(signer, rsps, verifier):
    """A merchant without a webhook id cannot have any PayPal event verified."""
    headers = signer.headers(REFUND_EVENT, "")
    with pytest.raises(VerificationError) as caught:
        verifier.verify(headers, REFUND_EVENT, "")
    assert (caught.value.code, caught.value.message) == (
        "webhook_id_not_configured", "no PayPal webhook id configured")
    assert len(rsps.calls) == 0


# --- Local verification: the certificate URL ----------------------------------------------------

REFUSED_CERT_URLS = {
    "http scheme": "http://api.paypal.com/v1/notifications/certs/CERT-1",
    "upper-case scheme": "HTTPS://api.paypal.com/v1/notifications/certs/CERT-1",
    "other host": "https://evil.example.com/v1/notifications/certs/CERT-1",
    "paypal.com itself": "https://www.paypal.com/v1/notifications/certs/CERT-1",
    "lookalike suffix": "https://api.paypal.com.evil.com/v1/notifications/certs/CERT-1",
    "fragment trick": "https://evil.com#@api.paypal.com/v1/notifications/certs/CERT-1",
    "unbalanced IPv6 bracket": "https://[api-m.paypal.com/v1/notifications/certs/CERT-1",
    "userinfo": "https://user@api.paypal.com/v1/notifications/certs/CERT-1",
    "userinfo naming paypal": "https://api.paypal.com@evil.com/v1/notifications/certs/CERT-1",
    "explicit port": "https://api.paypal.com:8443/v1/notifications/certs/CERT-1",
    "explicit 443": "https://api.paypal.com:443/v1/notifications/certs/CERT-1",
    "ip literal": "https://151.101.1.21/v1/notifications/certs/CERT-1",
    "ipv6 literal": "https://[::1]/v1/notifications/certs/CERT-1",
    "trailing dot": "https://api.paypal.com./v1/notifications/certs/CERT-1",
    "upper-case host": "https://API.PAYPAL.COM/v1/notifications/certs/CERT-1",
    "idna lookalike": "https://api.paypaI.com/v1/notifications/certs/CERT-1".replace("I", "\u0131"),
    "punycode host": "https://xn--pypal-4ve.com/v1/notifications/certs/CERT-1",
    "path outside certs": "https://api.paypal.com/v1/oauth2/token",
    "path traversal": "https://api.paypal.com/v1/notifications/certs/../../oauth2/token",
    "encoded traversal": "https://api.paypal.com/v1/notifications/certs/%2e%2e/x",
    "nested path": "https://api.paypal.com/v1/notifications/certs/a/b",
    "no cert id": "https://api.paypal.com/v1/notifications/certs/",
    "query": "https://api.paypal.com/v1/notifications/certs/CERT-1?x=1",
    "fragment": "https://api.paypal.com/v1/notifications/certs/CERT-1#x",
    "backslash": "https://api.paypal.com\\@evil.com/v1/notifications/certs/CERT-1",
    "whitespace": "https://api.paypal.com /v1/notifications/certs/CERT-1",
    "control char": "https://api.paypal.com\t/v1/notifications/certs/CERT-1",
    "trailing newline": "https://api.paypal.com/v1/notifications/certs/CERT-1\n",
    "scheme-relative": "//api.paypal.com/v1/notifications/certs/CERT-1",
    "file scheme": "file:///etc/passwd",
}


@pytest.mark.parametrize("url", REFUSED_CERT_URLS.values(), ids=REFUSED_CERT_URLS.keys())
def test_a_cert_url_off_paypal_hosts_is_refused_without_any_request(signer, rsps, verifier, url):
    """The sender-chosen certificate URL is checked before anything is fetched."""
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID) | {"PAYPAL-CERT-URL": url}
    assert rejection(verifier, headers) == "cert_url_not_allowed"
    assert len(rsps.calls) == 0


@pytest.mark.parametrize("host", sorted(CERT_HOSTS))
def test_every_paypal_api_host_is_an_allowed_cert_host(host):
    """Live and sandbox, api and api-m."""
    check_cert_url(f"https://{host}/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270")


def test_a_redirect_from_the_real_host_is_not_followed(signer, rsps, verifier):
    """A 3xx is a failed fetch, and its Location is never requested."""
    rsps.get(signer.cert_url, status=302, headers={"Location": "https://evil.example/cert.pem"})
    assert rejection(verifier, signer.headers(REFUND_EVENT, WEBHOOK_ID)) == "cert_fetch_failed"
    assert [call.request.url for call in rsps.calls] == [signer.cert_url]


@pytest.mark.parametrize(
    "answer",
    [{"status": 404}, {"status": 503}, {"body": requests.ConnectTimeout("slow")}],
    ids=["404", "503", "timeout"],
)
def test_a_failed_certificate_fetch_is_rejected(signer, rsps, verifier, answer):
    """No certificate, no verification."""
    rsps.get(signer.cert_url, **answer)
    assert rejection(verifier, signer.headers(REFUND_EVENT, WEBHOOK_ID)) == "cert_fetch_failed"


def test_an_oversized_certificate_download_is_cut_off(signer, rsps, verifier):
    """A response larger than the cap is refused rather than read to the end."""
    rsps.get(signer.cert_url, body=signer.cert_pem + b"\n" * MAX_CERT_BYTES)
    assert rejection(verifier, signer.headers(REFUND_EVENT, WEBHOOK_ID)) == "cert_fetch_failed"


def test_a_response_that_is_not_a_certificate_is_rejected(signer, rsps, verifier):
    """An HTML error page served with 200 is not a certificate."""
    rsps.get(signer.cert_url, body=b"<html>oops</html>")
    assert rejection(verifier, signer.headers(REFUND_EVENT, WEBHOOK_ID)) == "cert_invalid"


def test_the_fetch_uses_the_configured_timeout(signer, rsps):
    """The timeout reaches requests, so a hung PayPal host cannot hold a worker forever."""
    session = RecordingSession()
    serve_cert(rsps, signer)
    verifier = PayPalVerifier(signer.ca_pem, timeout=1.5, session=session)
    verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    assert session.timeouts == [(signer.cert_url, 1.5)]


# The allowed form, restated independently of the implementation as the property's oracle.
ALLOWED_URL = re.compile(
    r"https://(api|api-m)(\.sandbox)?\.paypal\.com/v1/notifications/certs/"
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
)
allowed_urls = st.builds(
    "https://{}/v1/notifications/certs/{}".format,
    st.sampled_from(sorted(CERT_HOSTS)),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,24}", fullmatch=True),
)
assembled_urls = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["https://", "http://", "HTTPS://", "https:", "//", ""]),
        st.sampled_from(["", "user@", "api.paypal.com@", "a:b@"]),
        st.sampled_from(
            sorted(CERT_HOSTS)
            + ["API.paypal.com", "api.paypal.com.", "paypal.com", "api.paypal.com.evil.com",
               "evil.com#@api.paypal.com", "127.0.0.1", "[::1]", "api.paypa\u0131.com"]
        ),
        st.sampled_from(["", ":443", ":80", ":"]),
        st.sampled_from(["/v1/notifications/certs/", "/v1/notifications/cert/", "/v1/oauth2/",
                         "/v1/notifications/certs/../", "/V1/notifications/certs/", ""]),
        st.from_regex(r"CERT-[0-9a-f]{8}", fullmatch=True) | st.text(max_size=8),
        st.sampled_from(["", "?a=1", "#frag", "/", "%2F", " ", "\n"]),
    ),
)


@st.composite
def mutated_urls(draw: st.DrawFn) -> str:
    """An allowed URL with one character inserted, deleted or replaced."""
    url = draw(allowed_urls)
    at = draw(st.integers(min_value=0, max_value=len(url) - 1))
    char = draw(st.characters(codec="utf-8") | st.sampled_from("@#?%:/\\. \t\nA"))
    edit = draw(st.sampled_from(["insert", "delete", "replace"]))
    if edit == "insert":
        return url[:at] + char + url[at:]
    if edit == "delete":
        return url[:at] + url[at + 1 :]
    return url[:at] + char + url[at + 1 :]


@settings(
    max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(url=st.one_of(allowed_urls, mutated_urls(), assembled_urls))
def test_random_cert_urls_are_fetched_only_when_exactly_of_the_allowed_form(signer, verifier, url):
    """A fetch happens if and only if the URL is https://<API host>/v1/notifications/certs/<id>."""
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID) | {"PAYPAL-CERT-URL": url}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(re.compile(r".*"), status=404)
        code = rejection(verifier, headers)
        fetched = len(mock.calls)
    if ALLOWED_URL.fullmatch(url):
        assert (code, fetched) == ("cert_fetch_failed", 1)
    else:
        assert fetched == 0
        assert code in {"cert_url_not_allowed", "missing_header"}  # blank: no header at all


# --- Local verification: the certificate itself -------------------------------------------------


def test_a_certificate_from_an_untrusted_ca_is_rejected(signer, rsps):
    """A self-made CA is not PayPal's: with the bundled DigiCert roots, the dev leaf fails."""
    serve_cert(rsps, signer)
    verifier = PayPalVerifier(load_bundled_ca())
    assert rejection(verifier, signer.headers(REFUND_EVENT, WEBHOOK_ID)) == "cert_untrusted"


def test_a_certificate_from_another_test_ca_is_rejected(signer, rsps):
    """Trusting one dev CA does not trust another."""
    stranger = make_signer()
    serve_cert(rsps, stranger)
    verifier = PayPalVerifier(signer.ca_pem)
    assert rejection(verifier, stranger.headers(REFUND_EVENT, WEBHOOK_ID)) == "cert_untrusted"


def test_an_expired_certificate_is_rejected(signer, rsps):
    """After notAfter the certificate is refused."""
    serve_cert(rsps, signer)
    later = clock_at(signer.not_after + timedelta(seconds=1))
    verifier = PayPalVerifier(signer.ca_pem, clock=later)
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID, transmission_time=later())  # sent then
    assert rejection(verifier, headers) == "cert_expired"


def test_a_not_yet_valid_certificate_is_rejected(signer, rsps):
    """Before notBefore the certificate is refused."""
    serve_cert(rsps, signer)
    earlier = clock_at(datetime.now(UTC) - timedelta(days=30))
    verifier = PayPalVerifier(signer.ca_pem, clock=earlier)
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID, transmission_time=earlier())  # sent then
    assert rejection(verifier, headers) == "cert_not_yet_valid"


def test_a_memoised_certificate_is_rechecked_once_it_expires(signer, rsps):
    """The cached verdict lasts until notAfter, not for the life of the process."""
    serve_cert(rsps, signer)
    now = [datetime.now(UTC)]
    verifier = PayPalVerifier(signer.ca_pem, clock=lambda: now[0])
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    verifier.verify(headers, REFUND_EVENT, WEBHOOK_ID)
    now[0] = signer.not_after + timedelta(seconds=1)
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID, transmission_time=now[0])  # sent then
    assert rejection(verifier, headers) == "cert_expired"


def test_an_expired_ca_certificate_is_rejected_even_if_the_leaf_is_valid(rsps):
    """The whole path is checked for validity, not just the leaf."""
    long_leaf = make_signer(not_after=datetime.now(UTC) + timedelta(days=3650))
    serve_cert(rsps, long_leaf)
    ca_expiry = x509.load_pem_x509_certificate(long_leaf.ca_pem).not_valid_after_utc
    after = ca_expiry + timedelta(days=1)
    verifier = PayPalVerifier(long_leaf.ca_pem, clock=clock_at(after))
    headers = long_leaf.headers(REFUND_EVENT, WEBHOOK_ID, transmission_time=after)  # sent then
    assert rejection(verifier, headers) == "cert_untrusted"


@pytest.mark.parametrize(
    "name", ["messageverificationcerts.paypal.com.evil.example", "evil.example", "paypal.com"]
)
def test_a_certificate_for_a_name_outside_paypal_com_is_rejected(rsps, name):
    """A certificate issued to someone else, even by a trusted CA, cannot sign PayPal events."""
    impostor = make_signer(common_name=name)
    serve_cert(rsps, impostor)
    verifier = PayPalVerifier(impostor.ca_pem)
    assert rejection(verifier, impostor.headers(REFUND_EVENT, WEBHOOK_ID)) == "cert_name_mismatch"


def test_a_live_paypal_name_is_accepted(rsps):
    """messageverificationcerts.paypal.com, the live signing name, passes the name check."""
    live = make_signer(common_name="messageverificationcerts.paypal.com")
    serve_cert(rsps, live)
    headers = live.headers(REFUND_EVENT, WEBHOOK_ID)
    PayPalVerifier(live.ca_pem).verify(headers, REFUND_EVENT, WEBHOOK_ID)


def test_the_bundled_ca_holds_the_three_digicert_roots():
    """The shipped trust anchors are DigiCert's, as PayPal's signing certificates need."""
    names = {
        cert.subject.rfc4514_string() for cert in x509.load_pem_x509_certificates(load_bundled_ca())
    }
    assert names == {
        "CN=DigiCert Global Root CA,OU=www.digicert.com,O=DigiCert Inc,C=US",
        "CN=DigiCert Global Root G2,OU=www.digicert.com,O=DigiCert Inc,C=US",
        "CN=DigiCert High Assurance EV Root CA,OU=www.digicert.com,O=DigiCert Inc,C=US",
    }


# --- Dev certificates ---------------------------------------------------------------------------


def test_the_persisted_dev_signer_verifies_with_no_fetch(tmp_path, rsps):
    """A gateway trusting data_dir/devcerts/ca.pem finds the simulator's leaf in its disk cache."""
    signer = load_or_create_dev_signer(tmp_path)
    ca_pem = (tmp_path / "devcerts" / "ca.pem").read_bytes()
    verifier = PayPalVerifier(ca_pem, cache_dir=tmp_path / "paypal-certs")
    verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    assert len(rsps.calls) == 0


def test_the_persisted_dev_signer_is_reused_on_the_next_start(tmp_path):
    """A second start keeps the same CA, so an already-running gateway still trusts it."""
    first = load_or_create_dev_signer(tmp_path)
    second = load_or_create_dev_signer(tmp_path)
    assert second == first
    assert (tmp_path / "devcerts" / "key.pem").stat().st_mode & 0o077 == 0


def test_the_dev_signer_repr_does_not_show_the_key(signer):
    """A signer in a log line or test failure never prints its private key."""
    assert "PRIVATE" not in repr(signer)


# --- API verification ---------------------------------------------------------------------------

ODD_EVENT = (
    b'{ "id" :"WH-ODD-1",\n\t"summary": "caf\\u00e9 \xe2\x82\xac 4.99 \\/ refund" ,'
    b'"resource":{"amount":{"value":"4.990","currency_code":"EUR"}},"n":1.50e0 }\r\n'
)


def test_api_verification_sends_the_raw_event_bytes_verbatim(signer, rsps, api_verifier):
    """Odd spacing, escapes and UTF-8 reach PayPal exactly as received."""
    fake_paypal(rsps, "SUCCESS")
    headers = signer.headers(ODD_EVENT, WEBHOOK_ID)
    api_verifier.verify(headers, ODD_EVENT, WEBHOOK_ID)
    sent = rsps.calls[1].request.body
    expected_head = json.dumps(
        {
            "auth_algo": "SHA256withRSA",
            "cert_url": signer.cert_url,
            "transmission_id": headers["PAYPAL-TRANSMISSION-ID"],
            "transmission_sig": headers["PAYPAL-TRANSMISSION-SIG"],
            "transmission_time": headers["PAYPAL-TRANSMISSION-TIME"],
            "webhook_id": WEBHOOK_ID,
        },
        separators=(",", ":"),
    )[:-1].encode()
    assert sent == expected_head + b',"webhook_event":' + ODD_EVENT + b"}"
    assert json.loads(sent)["webhook_event"]["id"] == "WH-ODD-1"


def test_api_verification_passes_on_success(signer, rsps, api_verifier):
    """verification_status SUCCESS accepts the event, with the bearer token from OAuth."""
    fake_paypal(rsps, "SUCCESS")
    api_verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    assert rsps.calls[0].request.headers["Authorization"].startswith("Basic ")
    assert rsps.calls[1].request.headers["Authorization"] == "Bearer A21AAF-token"


def test_api_verification_rejects_on_failure(signer, rsps, api_verifier):
    """verification_status FAILURE is a bad signature."""
    fake_paypal(rsps, "FAILURE")
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    assert rejection(api_verifier, headers) == "bad_signature"


@pytest.mark.parametrize("status", [500, 503, 429])
def test_api_verification_outage_is_reported_as_unavailable(signer, rsps, api_verifier, status):
    """A 5xx (or throttling) is not a verdict: the web tier answers 503 so PayPal retries."""
    fake_paypal(rsps, status)
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    assert rejection(api_verifier, headers) == "verification_unavailable"


def test_api_verification_network_error_is_reported_as_unavailable(signer, rsps, api_verifier):
    """A connection failure to PayPal is an outage, not a rejection."""
    fake_paypal(rsps)
    rsps.post(VERIFY_URL, body=requests.ConnectionError("reset"))
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    assert rejection(api_verifier, headers) == "verification_unavailable"


def test_api_verification_oauth_failure_is_reported_as_unavailable(signer, rsps, api_verifier):
    """Rejected client credentials are an operator problem: retry later, do not reject the event."""
    rsps.post(TOKEN_URL, status=401, json={"error": "invalid_client"})
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    assert rejection(api_verifier, headers) == "verification_unavailable"


def test_the_oauth_token_is_fetched_once_and_reused(signer, rsps, api_verifier):
    """Two events, one token request, against our configured API base."""
    fake_paypal(rsps, "SUCCESS", "SUCCESS")
    for _ in range(2):
        api_verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    assert [call.request.url for call in rsps.calls] == [TOKEN_URL, VERIFY_URL, VERIFY_URL]


def test_a_token_refused_by_paypal_is_renewed_once(signer, rsps, api_verifier):
    """A 401 from the verify endpoint fetches a new token and retries."""
    fake_paypal(rsps, 401, "SUCCESS")
    rsps.post(TOKEN_URL, json={"access_token": "second", "token_type": "Bearer", "expires_in": 60})
    api_verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID), REFUND_EVENT, WEBHOOK_ID)
    assert rsps.calls[-1].request.headers["Authorization"] == "Bearer second"


@pytest.mark.parametrize("url", list(REFUSED_CERT_URLS.values())[:8])
def test_api_verification_refuses_a_bad_cert_url_before_any_call(signer, rsps, api_verifier, url):
    """The allow-list applies in API mode too, before OAuth or verification."""
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID) | {"PAYPAL-CERT-URL": url}
    assert rejection(api_verifier, headers) == "cert_url_not_allowed"
    assert len(rsps.calls) == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{}, "webhook_id": "WH-ATTACKER"',
        b'{"id":1} {"id":2}',
        b"[1, 2]",
        b'"just a string"',
        '{"id":"x"}'.encode("utf-16"),
        b'\xef\xbb\xbf{"id":"bom"}',
        b'{"id":"\xff"}',
        b"",
    ],
    ids=[
        "field injection", "two documents", "array", "string", "utf-16", "bom", "bad utf-8", "empty"
    ],
)
def test_api_verification_refuses_a_body_that_is_not_one_json_object(
    signer, rsps, api_verifier, body
):
    """Only a single JSON object is spliced in, so a body cannot add fields to our request."""
    headers = signer.headers(body, WEBHOOK_ID)
    assert rejection(api_verifier, headers, body=body) == "malformed_body"
    assert len(rsps.calls) == 0


def test_api_verification_requires_every_header(signer, rsps, api_verifier):
    """Missing headers are refused locally, not forwarded to PayPal."""
    headers = signer.headers(REFUND_EVENT, WEBHOOK_ID)
    del headers["PAYPAL-TRANSMISSION-SIG"]
    assert rejection(api_verifier, headers) == "missing_header"
    assert len(rsps.calls) == 0


def test_api_verification_refuses_a_stale_transmission_before_asking_paypal(signer, rsps,
                                                                             api_verifier):
    """The tolerance holds in API mode too: a transmission 301 s old is refused, and PayPal
    is never asked (no token, no verify call); 300 s old is asked."""
    old = datetime.now(UTC) - timedelta(seconds=301)
    with pytest.raises(VerificationError) as refused:
        api_verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID, transmission_time=old),
                            REFUND_EVENT, WEBHOOK_ID)
    assert refused.value.code == "stale_transmission" and len(rsps.calls) == 0
    fake_paypal(rsps, "SUCCESS")
    recent = datetime.now(UTC) - timedelta(seconds=290)
    api_verifier.verify(signer.headers(REFUND_EVENT, WEBHOOK_ID, transmission_time=recent),
                        REFUND_EVENT, WEBHOOK_ID)
