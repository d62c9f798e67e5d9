"""Our own error hierarchy. Each error carries what an operator needs to act on it."""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error this service raises on purpose."""


class ConfigError(GatewayError):
    """The configuration or merchants file is wrong; raised at start-up, never mid-request."""


class UnknownMerchant(GatewayError):
    """A request named a merchant that is not configured."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown merchant {name!r}")
        self.name = name


class VerificationError(GatewayError):
    """A webhook failed verification. ``code`` is a stable machine-readable reason."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InboxUnavailable(GatewayError):
    """A delivery could not be stored for a reason outside it: the caller answers 503."""


class TransmissionReused(GatewayError):
    """A PayPal transmission id already delivered another event: a body forged to match the
    signed CRC32 of a captured delivery, replayed under its headers."""

    def __init__(self, transmission_id: str) -> None:
        super().__init__(f"PayPal transmission {transmission_id} already carried another event")
        self.transmission_id = transmission_id


class ProviderError(GatewayError):
    """A provider API call failed. ``retryable`` says whether trying again can help."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        code: str = "api_error",
        retryable: bool = False,
        request_id: str | None = None,
        http_status: int | None = None,
        names: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.names = names  # the provider's own names for the error (PayPal's name and issues)
        self.code = code
        self.retryable = retryable
        self.request_id = request_id
        self.http_status = http_status
