"""The fast constructors of policy.frozen, called directly: what they build and what they refuse.

The policy's own classes go through them at import time only, which no single test observes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from policy.frozen import builder, fast_init


def test_fast_init_on_a_slotted_class_sets_every_field_and_keeps_it_frozen():
    """A slotted frozen dataclass given fast_init builds equal, hashable, frozen objects."""
    @fast_init
    @dataclass(frozen=True, slots=True)
    class Pair:
        left: int
        right: str

    pair = Pair(1, "a")
    assert (pair.left, pair.right) == (1, "a")
    assert pair == Pair(left=1, right="a") and hash(pair) == hash(Pair(1, "a"))
    assert repr(pair).endswith("Pair(left=1, right='a')")
    with pytest.raises(dataclasses.FrozenInstanceError):
        pair.left = 2  # type: ignore[misc]


def test_fast_init_on_a_class_without_slots_sets_every_field_and_keeps_it_frozen():
    """A frozen dataclass without slots given fast_init builds the same objects as before."""
    @fast_init
    @dataclass(frozen=True)
    class Triple:
        a: int
        b: int
        c: str

    triple = Triple(1, 2, c="x")
    assert (triple.a, triple.b, triple.c) == (1, 2, "x")
    assert vars(triple) == {"a": 1, "b": 2, "c": "x"}
    assert triple == Triple(1, 2, "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        triple.c = "y"  # type: ignore[misc]


def test_fast_init_on_a_slotted_class_without_fields_still_constructs():
    """A slotted frozen dataclass with no fields can still be built after fast_init."""
    @fast_init
    @dataclass(frozen=True, slots=True)
    class Empty:
        pass

    assert Empty() == Empty()


def test_fast_init_refuses_a_class_that_is_not_a_frozen_dataclass():
    """fast_init raises a TypeError naming a plain class or a mutable dataclass."""
    class Plain:
        pass

    @dataclass
    class Mutable:
        x: int

    with pytest.raises(TypeError, match="Plain must be a frozen dataclass"):
        fast_init(Plain)
    with pytest.raises(TypeError, match="Mutable must be a frozen dataclass"):
        fast_init(Mutable)


@pytest.mark.parametrize("default", [{"default": 0}, {"default_factory": int}])
def test_fast_init_refuses_fields_with_defaults(default):
    """A field with a default or a default factory makes fast_init raise, naming the class."""
    @dataclass(frozen=True)
    class WithDefault:
        # mypy's dataclass plugin cannot read a field() whose arguments are unpacked.
        x: int = field(**default)  # type: ignore[misc]

    with pytest.raises(TypeError, match="WithDefault: fields with defaults are not supported"):
        fast_init(WithDefault)


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
