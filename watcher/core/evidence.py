"""Evidence that is not a journal line: the result of one active probe."""

from __future__ import annotations

from dataclasses import dataclass

from watcher.classify.table import FailureClass


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe of one model found. ``ok`` only if HTTP 200, a readable non-empty
    answer, and the answering model is the one asked for."""

    model: str  # provider/model ref as in the chains
    ok: bool
    started_at: float  # epoch seconds (wall clock of the shell, passed in)
    latency_s: float
    probe_id: str
    failure_class: FailureClass | None = None  # None when ok
    status: int | None = None  # HTTP status when one came back
    retry_after_s: float | None = None
    detail: str = ""  # short, secret-free description
    served_model: str | None = None  # the model name the answer claimed
