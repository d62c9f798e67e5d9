"""GATEWAY_PUBLIC_URL: the address report rows link their events under, checked at start-up."""

from __future__ import annotations

import pytest

from service.config import load_settings
from service.errors import ConfigError


@pytest.mark.parametrize(("raw", "expected"), [
    ("", None), ("  ", None), ("https://gateway.example.com/", "https://gateway.example.com"),
    ("http://127.0.0.1:8000/gw", "http://127.0.0.1:8000/gw"),
])
def test_the_public_url_is_an_http_address_without_a_trailing_slash(raw, expected):
    """GATEWAY_PUBLIC_URL, which report rows link under; empty means no links."""
    assert load_settings({"GATEWAY_PUBLIC_URL": raw}).public_url == expected
    assert load_settings({}).public_url is None


@pytest.mark.parametrize("raw", ["javascript:alert(1)", "gateway.example.com", "ftp://x.example",
                                 "https://", "https://x.example/?a=1", "https://x.example/#f",
                                 "https://x.example/{event_id}", "https://x.example:port"])
def test_a_public_url_that_is_not_an_http_address_is_refused_naming_the_variable(raw):
    with pytest.raises(ConfigError, match="GATEWAY_PUBLIC_URL") as caught:
        load_settings({"GATEWAY_PUBLIC_URL": raw})
    assert repr(raw) in str(caught.value)
