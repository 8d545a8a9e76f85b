"""The core's hot-path shortcuts, kept apart from the policy so the logic reads plainly.

``decide`` runs once per traffic event, so two things take a shortcut here:

- ``evolve``, a generated copy-with-changes for the core's frozen dataclasses, about
  3x faster than ``dataclasses.replace``;
- ``routine_finish``, how a step with no cards and no other effects ends: no lists to
  build, no cards to merge and describe.

Each is held to the slow path it replaces, for every input, by
``tests/core/test_core_fastpaths.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, TypeVar, cast

from watcher.core.effects import Effect, WritePins

_D = TypeVar("_D")
_EVOLVERS: dict[type, Callable[[Any, dict[str, Any]], Any]] = {}


def _evolver(cls: type) -> Callable[[Any, dict[str, Any]], Any]:
    """Generate ``cls``'s copy-with-changes function, one unrolled line per field (as
    ``dataclasses`` generates ``__init__``): no loop, no ``getattr`` by name."""
    names = tuple(f.name for f in fields(cls))
    known = frozenset(names)
    lines = [
        "def evolve(obj, changes):",
        "    if not changes.keys() <= known:",
        "        bad = ', '.join(sorted(changes.keys() - known))",
        f"        raise TypeError(f'{cls.__name__} has no field(s) {{bad}}')",
        "    new = new_(cls)",
    ]
    for name in names:
        value = f"changes[{name!r}] if {name!r} in changes else obj.{name}"
        lines.append(f"    set_(new, {name!r}, {value})")
    lines.append("    return new")
    namespace: dict[str, Any] = {
        "cls": cls,
        "known": known,
        "new_": object.__new__,
        "set_": object.__setattr__,
    }
    exec("\n".join(lines), namespace)  # noqa: S102 - source built from field names only
    return cast(Callable[[Any, dict[str, Any]], Any], namespace["evolve"])


def evolve(obj: _D, **changes: Any) -> _D:
    """``dataclasses.replace`` for the hot path: about 3x faster, no ``__init__``.

    Only for the frozen, slotted, validator-free dataclasses of this package (there
    ``__init__`` only stores the fields, so skipping it changes nothing). Unknown
    field names raise ``TypeError``, as with ``replace``.
    """
    cls = type(obj)
    fn = _EVOLVERS.get(cls)
    if fn is None:
        fn = _EVOLVERS[cls] = _evolver(cls)
    return cast(_D, fn(obj, changes))


# WritePins carries no data: one shared instance (and a shared one-effect tuple) saves
# an allocation per routine event; effects are compared by type, never by identity.
WRITE_PINS = WritePins()
PINS_ONLY: tuple[Effect, ...] = (WRITE_PINS,)


def routine_finish(
    head: str, notes: Sequence[str], *, dirty: bool, quiet: bool
) -> tuple[tuple[Effect, ...], str]:
    """The effects and sentence of a step with no cards and no other effects (a
    failure that moves no pin, a skip, a lane line). Equal to ``Step.finish_in_full``."""
    if notes:
        sentence = "; ".join((head, *notes)) + "."
    elif quiet:
        sentence = head + "."
    else:
        sentence = head + "; no pin changed."
    return (PINS_ONLY if dirty else ()), sentence
