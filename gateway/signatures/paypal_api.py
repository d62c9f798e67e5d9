"""PayPal webhook verification by asking PayPal (POST /v1/notifications/verify-webhook-signature).

For merchants configured with ``verification = "api"``. PayPal checks the signature over the
exact event bytes, so the event is spliced into the request body verbatim, never re-serialised.
The OAuth token comes from ``paypalrestsdk.Api`` (which caches it until it expires).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import requests
from paypalrestsdk import exceptions as sdk_errors

from adapters.paypal_client import PayPalClient
from gateway.signatures.paypal import (
    check_cert_url,
    check_transmission_time,
    read_transmission,
)
from service.config import PayPalSettings
from service.errors import VerificationError

VERIFY_PATH = "/v1/notifications/verify-webhook-signature"


class PayPalApiVerifier:
    """Verifies PayPal webhooks with PayPal's API. Safe to share between threads."""

    def __init__(
        self,
        settings: PayPalSettings,
        *,
        timeout: float = 5.0,
        session: requests.Session | None = None,
        tolerance: int = 300,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._tolerance, self._clock = tolerance, clock
        self._url = settings.api_base.rstrip("/") + VERIFY_PATH
        self._timeout = timeout
        self._session = session or requests.Session()
        self._tokens = PayPalClient(settings, self._session, timeout=timeout)
        self._token_lock = threading.Lock()

    def verify(self, headers: Mapping[str, str], raw_body: bytes, webhook_id: str) -> None:
        """Return if PayPal says it signed this delivery for ``webhook_id``; raise if not.

        ``verification_unavailable`` means PayPal could not be asked; answer 503 so it retries.
        """
        if not webhook_id:
            raise VerificationError("webhook_id_not_configured", "no PayPal webhook id configured")
        transmission = read_transmission(headers)
        check_transmission_time(transmission.transmission_time, self._clock(), self._tolerance)
        check_cert_url(transmission.cert_url)
        _check_single_json_object(raw_body)
        fields = {
            "auth_algo": transmission.auth_algo,
            "cert_url": transmission.cert_url,
            "transmission_id": transmission.transmission_id,
            "transmission_sig": transmission.transmission_sig,
            "transmission_time": transmission.transmission_time,
            "webhook_id": webhook_id,
        }
        envelope = json.dumps(fields, separators=(",", ":"))
        body = envelope[:-1].encode() + b',"webhook_event":' + raw_body + b"}"
        status = self._post(body)
        if status != "SUCCESS":
            raise VerificationError(
                "bad_signature", f"PayPal answered verification_status {status!r}"
            )

    def _post(self, body: bytes) -> str:
        """POST the request, renewing the token once if PayPal says it is no longer valid."""
        for attempt in range(2):
            response = self._send(body, self._token(fresh=attempt > 0))
            if response.status_code != 401:
                return _status_of(response)
        raise _unavailable("PayPal refused our access token twice")

    def _send(self, body: bytes, token: str) -> requests.Response:
        try:
            return self._session.post(
                self._url,
                data=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Accept": "application/json",
                },
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise _unavailable(f"could not reach PayPal: {type(exc).__name__}") from exc

    def _token(self, *, fresh: bool) -> str:
        with self._token_lock:
            if fresh:
                self._tokens.token_hash = None
            try:
                return str(self._tokens.get_access_token())
            except (sdk_errors.ConnectionError, requests.RequestException, ValueError) as exc:
                # ConnectionError is the base of every SDK HTTP error (401 from bad credentials
                # too): retrying later or fixing the configuration helps, rejecting would not.
                why = type(exc).__name__
                raise _unavailable(f"could not get a PayPal access token: {why}") from exc


def _check_single_json_object(raw_body: bytes) -> None:
    """Refuse anything but one UTF-8 JSON object before splicing it into our request.

    Parsed only to be checked, never re-serialised. Without this, a body such as
    ``{}, "webhook_id": "WH-attacker"`` would add a second ``webhook_id`` to our request.
    """
    try:
        event = json.loads(raw_body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
        raise VerificationError(
            "malformed_body", "PayPal event is not one UTF-8 JSON document"
        ) from None
    if not isinstance(event, dict):
        raise VerificationError("malformed_body", "PayPal event is not a JSON object")


def _status_of(response: requests.Response) -> str:
    """A 4xx (bar those a retry can cure) refuses the delivery; any other non-2xx is an outage."""
    code = response.status_code
    if 400 <= code < 500 and code not in (403, 408, 429):
        raise VerificationError(
            "bad_signature", f"PayPal refused the verification request (HTTP {code})"
        )
    if not 200 <= code < 300:
        raise _unavailable(f"PayPal answered HTTP {code}")
    try:
        return str(response.json()["verification_status"])
    except (ValueError, KeyError, TypeError):
        raise _unavailable("PayPal's answer has no verification_status") from None


def _unavailable(message: str) -> VerificationError:
    return VerificationError("verification_unavailable", message)
