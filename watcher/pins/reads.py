"""What a read of the pin file found: the state, and what became of a hand edit
(``NoChange``, ``AdoptedEdit`` or ``RejectedEdit``). Plain data, returned by
``watcher.pins.store.PinStore.read`` and judged by the daemon."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from watcher.pins.schema import PinFile


@dataclass(frozen=True, slots=True)
class NoChange:
    """The file holds what this store last wrote or accepted."""


@dataclass(frozen=True, slots=True)
class AdoptedEdit:
    """A valid hand edit, now the current state. ``previous`` is None on a first start
    that found a pin file but no ``last-good`` to compare it with."""

    pins: PinFile
    previous: PinFile | None


@dataclass(frozen=True, slots=True)
class RejectedEdit:
    """An invalid hand edit, quarantined; the last good state is back on disk.

    ``quarantined_to`` is None only when there was no text to keep (the file was
    deleted while the watcher ran).
    """

    error: str
    quarantined_to: Path | None
    restored: PinFile


EditOutcome = NoChange | AdoptedEdit | RejectedEdit


@dataclass(frozen=True, slots=True)
class PinRead:
    pins: PinFile  # the current, valid state (after adoption or restore)
    edit: EditOutcome
