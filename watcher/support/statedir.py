"""The files in the watcher's state directory, by name, for every module that reads one
(the daemon writes them; ``status`` and ``audit verify`` read them without loading the
daemon)."""

from __future__ import annotations

SNAPSHOT_FILENAME = "core-state.json"  # core state, journal position, pending effects
