"""Fuzzing the webhook endpoints: nothing unverified is stored or acted on, and nothing gets a 500.

Each test sends a few hundred generated deliveries through the real app (real database, real
Redis) and checks two things: every answer is one we meant (a 2xx only for a delivery signed
for its exact bytes, else our JSON error), and afterwards the inbox holds exactly the bodies that
were genuinely signed, with nothing else decided, queued or written to the ledger.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from typing import Any

import responses
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.envelope import MAX_NESTING, nesting
from sandbox import samples
from tests.security.fuzz import FUZZ, TALLY, assert_error_shape, stored_bodies, world
from tests.support import stripe as sig
from tests.support.delivery import PAYPAL_MERCHANT, PAYPAL_WEBHOOK_ID, drain_everything
from tests.support.paypal import shared_signer

_ids = itertools.count()
BASE_STRIPE = samples.stripe_event("charge.succeeded", samples.Scenario(key="fuzz"))
BASE_PAYPAL = samples.paypal_event("PAYMENT.SALE.COMPLETED",
                                   samples.Scenario(key="fuzz", payment_method="paypal"))

# Header values as a WSGI server hands them over: latin-1 text, no line breaks.
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF,
                                    exclude_characters="\x7f"), max_size=300)
HEADER_NAMES = ["Stripe-Signature", "PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-TIME",
                "PAYPAL-TRANSMISSION-SIG", "PAYPAL-CERT-URL", "PAYPAL-AUTH-ALGO",
                "Content-Type", "Content-Encoding", "X-Forwarded-For", "X-Unknown"]


def stripe_body(**changes: Any) -> bytes:
    """A real-shaped Stripe event with a fresh id, so a genuine delivery is a new inbox row."""
    return json.dumps({**BASE_STRIPE, "id": f"evt_fuzz_{next(_ids)}", **changes}).encode()


def paypal_body() -> bytes:
    return json.dumps({**BASE_PAYPAL, "id": f"WH-FUZZ-{next(_ids)}"}).encode()


def hmac_header(raw: bytes, timestamp: int | str, secret: str = sig.SECRET) -> str:
    """Stripe's v1 scheme over the exact bytes (stripe-python would refuse non-UTF-8 to sign)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def post(client: Any, provider: str, raw: bytes, headers: dict[str, str],
         merchant: str = sig.MERCHANT) -> Any:
    return client.post(f"/webhooks/{merchant}/{provider}", data=raw, headers=headers,
                       content_type="application/json")


def assert_refused(resp: Any, *codes: int) -> None:
    assert resp.status_code in (codes or (400,)), (resp.status_code, resp.get_data()[:300])
    assert_error_shape(resp)


# --- Random bodies, headers and paths -----------------------------------------------------------

@FUZZ
@given(merchant=st.sampled_from(["theopenhost", "oneclick", "nobody", "THEOPENHOST", "x" * 300]),
       provider=st.sampled_from(["stripe", "paypal", "Stripe", "PAYPAL", "ftp", "stripe.json"]),
       body=st.binary(max_size=4096),
       headers=st.dictionaries(st.sampled_from(HEADER_NAMES), header_text, max_size=6))
def _random_delivery(client: Any, merchant: str, provider: str, body: bytes,
                     headers: dict[str, str]) -> None:
    TALLY["webhooks: random bodies, headers, paths"] += 1
    with responses.RequestsMock() as no_network:
        resp = post(client, provider, body, headers, merchant=merchant)
        assert len(no_network.calls) == 0
    assert_refused(resp, 400, 404)


def test_random_bodies_headers_and_paths_are_refused_and_store_nothing(client, container):
    """Random bytes and headers to known and unknown endpoints: 400 or 404, never stored."""
    before = world(container)
    _random_delivery(client)
    assert world(container) == before


# --- Stripe: signatures and timestamps ----------------------------------------------------------

# (kind, seconds from now) for the relative kinds, (kind, value) for the absolute ones.
timestamps = st.one_of(
    st.tuples(st.just("recent"), st.integers(-250, 0)),
    st.tuples(st.just("future"), st.integers(1, 10**9)),
    st.tuples(st.just("stale"), st.integers(-(10**9), -400)),
    st.tuples(st.just("negative"), st.integers(-(10**12), -1)),
    st.tuples(st.just("huge"), st.integers(10**12, 10**4000)),
    st.tuples(st.just("text"), header_text.filter(lambda t: not t.strip().lstrip("-").isdigit())),
)


def timestamp_of(kind: str, value: int | str) -> int | str:
    return int(time.time()) + value if kind in ("recent", "future", "stale") else value  # type: ignore[operator]
signature_kinds = st.sampled_from(
    ["valid", "other_secret", "random_hex", "empty", "truncated", "upper_case", "non_ascii",
     "v0_only", "repeated_t", "spaces"])


def stripe_header(kind: str, ts: int | str, raw: bytes, draw_hex: str) -> str:
    valid = hmac_header(raw, ts)
    return {
        "valid": valid,
        "other_secret": hmac_header(raw, ts, "whsec_test_oneclick_current"),
        "random_hex": f"t={ts},v1={draw_hex}",
        "empty": f"t={ts},v1=",
        "truncated": valid[:-1],
        "upper_case": valid.upper(),
        "non_ascii": valid[:-1] + "\u00e9",
        "v0_only": valid.replace("v1=", "v0="),
        "repeated_t": f"t=1,{valid}",  # stripe-python reads the first t=
        "spaces": valid.replace(",", ", "),
    }[kind]


@FUZZ
@given(ts=timestamps, kind=signature_kinds, draw_hex=st.text("0123456789abcdef", max_size=64),
       extra=st.lists(header_text.filter(lambda t: "," not in t), max_size=2))
def _stripe_signature(client: Any, ts: tuple[str, int | str], kind: str, draw_hex: str,
                      extra: list[str]) -> None:
    TALLY["webhooks: Stripe signatures and timestamps"] += 1
    when, value = ts[0], timestamp_of(*ts)
    raw = stripe_body()
    header = ",".join([stripe_header(kind, value, raw, draw_hex), *extra])
    resp = post(client, "stripe", raw, {"Stripe-Signature": header})
    # Only our secret's signature over these bytes, made at a time not older than the
    # tolerance, is genuine (stripe-python has no upper bound: only a secret holder can sign).
    # Stripe's header is ASCII; one that is not is refused whole.
    genuine = kind == "valid" and when in ("recent", "future", "huge") and header.isascii()
    if genuine:
        assert resp.status_code == 200, resp.json
        assert resp.json["duplicate"] is False
    else:
        assert_refused(resp)
        if when == "stale" and kind == "valid" and header.isascii():
            assert resp.json["error"]["code"] == "stale_timestamp"


def test_only_our_signature_inside_the_tolerance_is_accepted(client, container):
    """Old, future, negative, huge and non-numeric timestamps, with good and bad signatures."""
    _stripe_signature(client)
    accepted = stored_bodies(container)
    for raw in accepted:  # each stored body re-verifies with the merchant's secret
        assert json.loads(raw)["id"].startswith("evt_fuzz_")
    assert world(container)["decisions"] == 0


# --- Validly signed bodies, changed after signing -----------------------------------------------

@st.composite
def mutation(draw: st.DrawFn, raw: bytes) -> bytes:
    """``raw`` with one to four bytes flipped, inserted, deleted or replaced."""
    out = bytearray(raw)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(out) - 1))
        edit = draw(st.sampled_from(["flip", "insert", "delete", "replace"]))
        byte = draw(st.integers(0, 255))
        if edit == "flip":
            out[at] ^= 1 << (byte % 8)
        elif edit == "insert":
            out.insert(at, byte)
        elif edit == "delete":
            del out[at]
        else:
            out[at] = byte
    return bytes(out)


STRIPE_SIGNED = stripe_body()
PAYPAL_SIGNED = paypal_body()


@FUZZ
@given(provider=st.sampled_from(["stripe", "paypal"]), data=st.data())
def _mutated_after_signing(client: Any, provider: str, data: st.DataObject) -> None:
    raw = STRIPE_SIGNED if provider == "stripe" else PAYPAL_SIGNED
    changed = data.draw(mutation(raw))
    if changed == raw:
        return
    TALLY["webhooks: signed bodies mutated after signing"] += 1
    headers = ({"Stripe-Signature": sig.signature(raw)} if provider == "stripe"
               else shared_signer().headers(raw, PAYPAL_WEBHOOK_ID))
    with responses.RequestsMock() as no_network:  # the certificate is in the disk cache
        resp = post(client, provider, changed, headers)
        assert len(no_network.calls) == 0
    assert_refused(resp)
    assert resp.json["error"]["code"] in {"bad_signature", "malformed_body"}


def test_a_body_changed_after_signing_is_never_stored(client, container):
    """Flipped, inserted, deleted or replaced bytes: 400, for Stripe and PayPal alike."""
    before = world(container)
    _mutated_after_signing(client)
    assert world(container) == before


# --- PayPal: headers changed after signing ------------------------------------------------------

PAYPAL_HEADERS = ["PAYPAL-TRANSMISSION-ID", "PAYPAL-TRANSMISSION-TIME", "PAYPAL-TRANSMISSION-SIG",
                  "PAYPAL-CERT-URL", "PAYPAL-AUTH-ALGO"]


@FUZZ
@given(name=st.sampled_from(PAYPAL_HEADERS), value=header_text | st.none(),
       webhook_id=st.sampled_from([PAYPAL_WEBHOOK_ID, "WH-ONECLICK-SANDBOX-000", ""]))
def _paypal_headers(client: Any, name: str, value: str | None, webhook_id: str) -> None:
    raw = paypal_body()
    headers = shared_signer().headers(raw, webhook_id)
    if value is None:
        del headers[name]
    elif headers[name] == value.strip(" \t"):  # a server trims the value: no change at all
        return
    else:
        headers[name] = value
    TALLY["webhooks: PayPal headers changed after signing"] += 1
    with responses.RequestsMock() as no_network:
        resp = post(client, "paypal", raw, headers, merchant=PAYPAL_MERCHANT)
        assert len(no_network.calls) == 0
    assert_refused(resp)


def test_paypal_headers_changed_after_signing_are_refused_without_a_fetch(client, container):
    """Any changed, dropped or blank PAYPAL-* header, or another webhook id: 400, no request."""
    before = world(container)
    _paypal_headers(client)
    assert world(container) == before


# --- Encodings ----------------------------------------------------------------------------------

ENCODINGS = {
    "utf-8": lambda text: text.encode("utf-8"),
    "utf-8 BOM": lambda text: text.encode("utf-8-sig"),
    "utf-16": lambda text: text.encode("utf-16"),
    "utf-16-be": lambda text: text.encode("utf-16-be"),
    "utf-32": lambda text: text.encode("utf-32"),
    "latin-1": lambda text: text.encode("latin-1", "replace"),
    "lone surrogate": lambda text: text.encode("utf-8", "surrogatepass"),
    "overlong slash": lambda text: text.encode().replace(b"/", b"\xc0\xaf"),
    "nul bytes": lambda text: text.encode().replace(b",", b",\x00"),
}


@FUZZ
@given(provider=st.sampled_from(["stripe", "paypal"]), encoding=st.sampled_from(sorted(ENCODINGS)),
       insert=st.text(max_size=20) | st.sampled_from(["\ud800", "\udfff", "\u202e", "\ufeff"]),
       signed=st.booleans())
def _encoded(client: Any, provider: str, encoding: str, insert: str, signed: bool) -> None:
    TALLY["webhooks: encodings"] += 1
    event = {**(BASE_STRIPE if provider == "stripe" else BASE_PAYPAL), "id": f"enc_{next(_ids)}"}
    event["note"] = insert
    text = json.dumps(event, ensure_ascii=False)
    try:
        raw = ENCODINGS[encoding](text)
    except UnicodeEncodeError:  # a lone surrogate that only surrogatepass can write
        raw = text.encode("utf-8", "surrogatepass")
    if provider == "stripe":
        headers = {"Stripe-Signature": hmac_header(raw, int(time.time()) if signed else 1)}
    else:
        headers = shared_signer().headers(raw, PAYPAL_WEBHOOK_ID if signed else "WH-OTHER")
    resp = post(client, provider, raw, headers)
    if resp.status_code == 200:
        assert signed
        assert raw in stored_bodies(container_of(client))
    else:
        assert_refused(resp)


def container_of(client: Any) -> Any:
    return client.application.extensions["gateway"]


def test_every_encoding_is_refused_or_stored_byte_for_byte_and_only_when_signed(client, container):
    """UTF-16/32, BOMs, latin-1, lone surrogates, overlong UTF-8, NULs: 200 only when signed."""
    before = world(container)["inbox_events"]
    _encoded(client)
    for raw in stored_bodies(container):
        assert json.loads(raw)["id"].startswith("enc_")
    assert world(container)["inbox_events"] >= before


# --- Size and depth -----------------------------------------------------------------------------

@settings(FUZZ, max_examples=40)  # each example is over a megabyte
@given(provider=st.sampled_from(["stripe", "paypal"]), over=st.integers(1, 64 * 1024),
       signed=st.booleans())
def _oversize(client: Any, provider: str, over: int, signed: bool) -> None:
    TALLY["webhooks: oversize bodies"] += 1
    limit = container_of(client).settings.body_limit
    raw = stripe_body(pad="x" * (limit + over))
    headers = ({"Stripe-Signature": sig.signature(raw) if signed else "t=1,v1=00"}
               if provider == "stripe" else shared_signer().headers(raw, PAYPAL_WEBHOOK_ID))
    resp = post(client, provider, raw, headers)
    assert_refused(resp, 413)


def test_a_body_over_the_limit_gets_413_signed_or_not(client, container):
    """Over ``body_limit`` is refused before it is read, whoever signed it."""
    before = world(container)
    _oversize(client)
    assert world(container) == before


def nested(depth: int, kind: str) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "array" else {"k": value}
    return value


@FUZZ
@given(provider=st.sampled_from(["stripe", "paypal"]), kind=st.sampled_from(["array", "object"]),
       depth=st.integers(1, 200) | st.integers(200, 100_000), where=st.sampled_from(
           ["metadata", "top", "raw"]))
def _deep(client: Any, provider: str, kind: str, depth: int, where: str) -> None:
    TALLY["webhooks: deeply nested JSON, validly signed"] += 1
    base = BASE_STRIPE if provider == "stripe" else BASE_PAYPAL
    event = json.loads(json.dumps({**base, "id": f"deep_{next(_ids)}"}))
    if where == "raw":  # built as text: json.dumps itself would recurse too deep
        opener, closer = ("[", "]") if kind == "array" else ('{"k":', "}")
        raw = (json.dumps(event)[:-1] + ', "deep": ' + opener * depth + "1" + closer * depth
               + "}").encode()
    else:
        target = event["data"]["object"] if provider == "stripe" else event["resource"]
        target["metadata" if where == "metadata" else "x"] = nested(min(depth, 500), kind)
        raw = json.dumps(event).encode()
    headers = ({"Stripe-Signature": hmac_header(raw, int(time.time()))} if provider == "stripe"
               else shared_signer().headers(raw, PAYPAL_WEBHOOK_ID))
    resp = post(client, provider, raw, headers)
    if resp.status_code == 200:
        assert nesting(json.loads(raw)) <= MAX_NESTING
    else:
        assert_refused(resp, 400, 413)


def test_deeply_nested_signed_json_is_refused_or_stored_safely(client, container):
    """Signed bodies nested up to 100,000 levels: 400 past the limit, else stored and drained."""
    _deep(client)
    bodies = stored_bodies(container)
    assert bodies, "the shallow cases should have been stored"
    assert all(nesting(json.loads(raw)) <= MAX_NESTING for raw in bodies)
    drain_everything(container)  # the workers take what was stored without crashing


def test_api_verification_refuses_a_deep_body_before_asking_paypal():
    """With verification = "api" the body is checked before it is spliced into our request."""
    import pytest

    from gateway.signatures.paypal_api import PayPalApiVerifier
    from service.config import PayPalSettings
    from service.errors import VerificationError

    raw = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    verifier = PayPalApiVerifier(PayPalSettings(client_id="c", client_secret="s"))
    with responses.RequestsMock() as no_network, pytest.raises(VerificationError) as info:
        verifier.verify(shared_signer().headers(raw, "WH-1"), raw, "WH-1")
    assert info.value.code == "malformed_body" and len(no_network.calls) == 0
