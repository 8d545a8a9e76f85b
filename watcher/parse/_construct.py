"""Generated constructors for the records made once per journal line.

A frozen dataclass's ``__init__`` stores each field through ``object.__setattr__``,
one Python-level call per field: 2.9 µs for a ``FallbackDecision`` (15 fields), made
for every decision line. ``constructor(cls)`` generates a function with the same
signature that creates the object and stores each field through its slot's own
descriptor (a C-level setter): 1.8 µs, its ``ts`` given by keyword as the parser does.
The object is the one ``cls(...)`` gives, field for field
(``tests/parse/test_parse_construct.py`` holds it to that).

Only for frozen, slotted dataclasses without ``__post_init__`` or default factories,
whose defaults are plain scalars: ``constructor`` refuses any other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, TypeVar

_T = TypeVar("_T")


def constructor(cls: type[_T]) -> Callable[..., _T]:
    """``cls(...)`` without its ``__init__``: same parameters, same object."""
    if not is_dataclass(cls) or not hasattr(cls, "__slots__"):
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has a __post_init__ that this would skip")
    params: list[str] = []
    body = ["    o = new_(cls)"]
    namespace: dict[str, Any] = {"cls": cls, "new_": object.__new__}
    for i, f in enumerate(fields(cls)):
        if f.default_factory is not MISSING:
            raise TypeError(f"{cls.__name__}.{f.name} has a default factory")
        if f.default is MISSING:
            params.append(f.name)
        else:
            if not isinstance(f.default, str | int | float | bool | type(None)):
                raise TypeError(f"{cls.__name__}.{f.name}'s default is not a plain scalar")
            namespace[f"d{i}"] = f.default
            params.append(f"{f.name}=d{i}")
        namespace[f"s{i}"] = cls.__dict__[f.name].__set__
        body.append(f"    s{i}(o, {f.name})")
    source = "\n".join([f"def make({', '.join(params)}):", *body, "    return o"])
    exec(source, namespace)  # noqa: S102 - source built from field names only
    make: Callable[..., _T] = namespace["make"]
    make.__name__ = make.__qualname__ = f"new_{cls.__name__}"
    return make
