"""A journal batch as the core's events: parse, classify, to evidence, counted."""

from __future__ import annotations

from watcher.classify.evidence import to_event
from watcher.core.events import Event
from watcher.parse.records import FallbackDecision, Unparsed
from watcher.source import Batch, Source
from watcher.support.metrics import WatcherMetrics


def events_of(batch: Batch, source: Source, w: WatcherMetrics) -> list[Event]:
    """The core's events in one journal batch: each entry parsed by its source,
    classified and turned into evidence; unparsed lines and decisions counted."""
    events: list[Event] = []
    # Counted per batch, then one inc per label pair: ``labels()`` validates and
    # takes a lock on every call, and a batch repeats a handful of pairs.
    counted: dict[tuple[str, str], int] = {}
    unparsed = 0
    for entry in batch.entries:
        record = source.parse(entry)
        if isinstance(record, Unparsed):
            unparsed += 1
            continue
        event = to_event(record, position=entry.position, catch_up=batch.catch_up)
        if event is None:
            continue
        if isinstance(record, FallbackDecision):
            cls = getattr(event, "failure_class", None)
            pair = (record.decision.value, cls.value if cls else "none")
            counted[pair] = counted.get(pair, 0) + 1
        events.append(event)
    if unparsed:
        w.unparsed.inc(unparsed)
    for (decision, failure_class), count in counted.items():
        w.events.labels(decision, failure_class).inc(count)
    return events
