"""The fast constructors of policy.frozen, called directly: what they build and what they refuse.

The policy's own classes go through them at import time only, which no single test observes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from policy.frozen import builder


def test_a_builder_refuses_a_class_that_is_not_a_frozen_dataclass():
    """builder raises a TypeError naming a plain class or a mutable dataclass."""
    class Plain:
        pass

    @dataclass(slots=True)
    class Mutable:
        a: int

    with pytest.raises(TypeError, match="Plain must be a frozen dataclass"):
        builder(Plain)
    with pytest.raises(TypeError, match="Mutable must be a frozen dataclass"):
        builder(Mutable)


@pytest.mark.parametrize("default", [{"default": 0}, {"default_factory": int}])
def test_a_builder_refuses_fields_with_defaults(default):
    """A field with a default or a default factory makes builder raise, naming the class."""
    @dataclass(frozen=True, slots=True)
    class WithDefault:
        a: int = field(**default)  # type: ignore[misc]  # a default either way

    with pytest.raises(TypeError, match="WithDefault: fields with defaults are not supported"):
        builder(WithDefault)


def test_a_builder_returns_frozen_objects_of_the_class():
    """builder(cls) makes objects of exactly cls, equal to cls(...) and still frozen."""
    @dataclass(frozen=True, slots=True)
    class Point:
        x: int
        y: int

    build = builder(Point)
    point = build(3, 4)
    assert type(point) is Point and point == Point(3, 4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        point.x = 5  # type: ignore[misc]


def test_a_builder_refuses_a_class_without_slots():
    """builder raises a TypeError naming a frozen dataclass that has no slots."""
    @dataclass(frozen=True)
    class Loose:
        x: int

    with pytest.raises(TypeError, match="Loose must be a slotted dataclass"):
        builder(Loose)


def test_a_builder_refuses_a_validating_class_unless_the_caller_vouches():
    """builder refuses a class with __post_init__ by default and accepts it with skip_post_init."""
    @dataclass(frozen=True, slots=True)
    class Checked:
        x: int

        def __post_init__(self) -> None:
            if self.x < 0:
                raise ValueError("negative")

    with pytest.raises(TypeError, match="Checked validates in __post_init__"):
        builder(Checked)
    assert builder(Checked, skip_post_init=True)(-1).x == -1
