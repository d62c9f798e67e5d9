"""A pack error names the pack, the key (or "(pack)" for the pack as a whole) and what is wrong."""

from __future__ import annotations

import tomllib
from importlib import resources

import pytest

from policy import PackError, load_pack
from policy.pack import parse_pack


def test_an_unknown_pack_is_named_in_the_error():
    """Asking for a pack that does not exist gives a PackError on the pack as a whole."""
    with pytest.raises(PackError) as info:
        load_pack("nosuchmerchant")
    error = info.value
    assert (error.pack, error.key) == ("nosuchmerchant", "")
    assert error.message.startswith("no such pack; available: ")
    assert str(error) == f"pack 'nosuchmerchant', (pack): {error.message}"


def test_a_wrong_key_is_named_with_its_pack_and_what_is_wrong():
    """A wrong value in a pack gives a PackError naming the pack, the dotted key and the problem."""
    data = tomllib.loads(resources.files("policy").joinpath("packs/theopenhost.toml").read_text())
    data["pack"]["currency"] = "usd"
    with pytest.raises(PackError) as info:
        parse_pack("theopenhost", data)
    error = info.value
    assert (error.pack, error.key) == ("theopenhost", "pack.currency")
    assert error.message
    assert str(error) == f"pack 'theopenhost', pack.currency: {error.message}"
