"""Pack loading at its edges: all states or reason codes may be listed, optional lists may go."""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

import pytest

from policy import PackError
from policy.case import ReasonCode, ServiceState
from policy.pack import parse_pack


def raw(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("policy").joinpath(f"packs/{name}.toml").read_text())


def test_a_pack_may_make_every_service_state_non_refundable():
    """non_refundable_states may list all the states, not only some of them."""
    data = raw("digitalcare")
    data["service_refund"]["non_refundable_states"] = [s.value for s in ServiceState]
    terms = parse_pack("digitalcare", data).service_refund
    assert terms is not None
    assert terms.non_refundable_states == frozenset(ServiceState)


def test_an_unknown_service_state_is_refused_naming_the_key_and_the_states():
    """A state that does not exist gives a PackError on that key, listing the valid states."""
    data = raw("digitalcare")
    data["service_refund"]["non_refundable_states"] = ["initiated", "abandoned"]
    with pytest.raises(PackError) as info:
        parse_pack("digitalcare", data)
    assert info.value.key == "service_refund.non_refundable_states"
    assert info.value.message == f"must list some of {sorted(ServiceState)}"


def test_refund_review_flags_are_optional():
    """A refund_review without flags loads with no flags."""
    data = raw("oneclick")
    del data["refund_review"]["flags"]
    review = parse_pack("oneclick", data).refund_review
    assert review is not None
    assert review.flags == ()


def test_window_exemptions_are_optional_and_may_name_every_reason_code():
    """window_exempt may be left out (no exemptions) or list every reason code."""
    data = raw("digitalcare")
    del data["service_refund"]["window_exempt"]
    terms = parse_pack("digitalcare", data).service_refund
    assert terms is not None
    assert terms.window_exempt == frozenset()
    data["service_refund"]["window_exempt"] = [r.value for r in ReasonCode]
    terms = parse_pack("digitalcare", data).service_refund
    assert terms is not None
    assert terms.window_exempt == frozenset(ReasonCode)


def test_an_unknown_exempt_reason_code_is_refused_naming_the_key_and_the_codes():
    """A reason code that does not exist gives a PackError on window_exempt, listing the codes."""
    data = raw("digitalcare")
    data["service_refund"]["window_exempt"] = ["billing_error", "whim"]
    with pytest.raises(PackError) as info:
        parse_pack("digitalcare", data)
    assert info.value.key == "service_refund.window_exempt"
    assert info.value.message == f"must list reason codes {sorted(ReasonCode)}"


def test_an_unknown_reason_code_in_a_deny_map_is_refused_naming_it():
    """A deny map keyed by a code that does not exist gives a PackError on that very key."""
    data = raw("oneclick")
    data["refund_review"]["deny"]["whim"] = "4"
    with pytest.raises(PackError) as info:
        parse_pack("oneclick", data)
    assert info.value.key == "refund_review.deny.whim"
    assert info.value.message == f"is not a reason code {sorted(ReasonCode)}"


@pytest.mark.parametrize("choice", ["full_refund", "needs_review"])
def test_before_initiation_takes_either_of_its_two_choices(choice):
    """service_refund.before_initiation may be full_refund or needs_review."""
    data = raw("digitalcare")
    data["service_refund"]["before_initiation"] = choice
    terms = parse_pack("digitalcare", data).service_refund
    assert terms is not None and terms.before_initiation == choice


def test_before_initiation_refuses_anything_else_naming_the_key():
    """Any other before_initiation value gives a PackError on that key."""
    data = raw("digitalcare")
    data["service_refund"]["before_initiation"] = "deny"
    with pytest.raises(PackError) as info:
        parse_pack("digitalcare", data)
    assert info.value.key == "service_refund.before_initiation"
