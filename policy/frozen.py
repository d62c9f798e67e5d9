"""A faster ``__init__`` for frozen, slotted dataclasses built on the hot path of ``evaluate``.

A frozen dataclass's generated ``__init__`` assigns every field through ``object.__setattr__``,
which costs about a microsecond per object here. ``fast_init`` replaces it with one that writes
through the slot descriptors directly (or, for a class without slots, one ``__dict__`` update). The class stays frozen (assignment after construction
still raises ``FrozenInstanceError``), and keeps its fields, equality, hash and repr.
"""

from __future__ import annotations

from dataclasses import MISSING, fields, is_dataclass
from typing import TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give the frozen dataclass ``cls`` a faster ``__init__`` (fields without defaults only)."""
    if not is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        raise TypeError(f"{cls.__name__} must be a frozen dataclass")
    names = [f.name for f in fields(cls)]
    if any(f.default is not MISSING or f.default_factory is not MISSING for f in fields(cls)):
        raise TypeError(f"{cls.__name__}: fast_init supports fields without defaults only")
    setters: dict[str, object] = {}
    if "__slots__" in cls.__dict__:
        setters = {f"_set_{n}": cls.__dict__[n].__set__ for n in names}
        body = "".join(f"    _set_{n}(self, {n})\n" for n in names) or "    pass\n"
    else:
        # Many fields: one dict update beats a descriptor call per field.
        body = "    self.__dict__.update({" + ", ".join(f"{n!r}: {n}" for n in names) + "})\n"
    source = f"def __init__(self, {', '.join(names)}):\n{body}"
    namespace: dict[str, object] = {}
    exec(source, setters, namespace)  # the same technique dataclasses uses to build __init__
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
    setattr(cls, "__init__", init)
    return cls
