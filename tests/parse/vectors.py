"""Load the taxonomy sample vectors in ``tests/vectors/*.log`` (fail2ban ``failJSON`` style).

Each sample line is preceded by ``# expect: {json}``. Other ``#`` lines and blank lines
are comments. Annotation keys (checked only when present):

- ``kind``: ``decision`` | ``chain_stopped`` | ``lane`` | ``unparsed`` | ``none`` |
  ``outcome`` (an HTTP answer body for ``classify_outcome``).
- parse: ``decision``, ``requested``, ``candidate`` (``P/M``), ``provider``/``model``
  (of the candidate), ``reason``, ``next`` (``P/M`` or ``none``), ``provider_error_type``,
  ``detail``, ``suppressed``, ``ts``, ``http_code``, ``session_id``, ``run_id``, ``lane``,
  ``final_outcome``, ``agent``, ``error``, ``error_name``, ``why`` (substring).
- classification: ``class`` (a FailureClass value or null), ``signature``, ``status``
  (the HTTP status used), ``retry_after``, ``not_signatures`` (must not claim the line).
- input: ``raw`` (``\\xHH`` escapes are real bytes; the line is fed as bytes),
  ``ts_arg`` (passed as ``ts=``), ``given_status``/``given_reason`` (outcomes).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VECTOR_DIR = Path(__file__).resolve().parent.parent / "vectors"
_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")


@dataclass(frozen=True)
class Vector:
    file: str
    lineno: int
    expect: dict[str, Any]
    line: str | bytes

    @property
    def id(self) -> str:
        return f"{self.file}:{self.lineno}"


def load_vectors(directory: Path = VECTOR_DIR) -> list[Vector]:
    vectors: list[Vector] = []
    for path in sorted(directory.glob("*.log")):
        pending: dict[str, Any] | None = None
        for lineno, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
            if raw.startswith(b"# expect:"):
                if pending is not None:
                    raise ValueError(f"{path.name}:{lineno}: two annotations in a row")
                pending = json.loads(raw[len(b"# expect:") :].decode("utf-8"))
                continue
            if pending is None:
                if raw.strip() and not raw.startswith(b"#"):
                    raise ValueError(f"{path.name}:{lineno}: sample line without # expect:")
                continue
            line: str | bytes
            if pending.get("raw"):
                line = _ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), raw)
            else:
                line = raw.decode("utf-8")
            vectors.append(Vector(path.name, lineno, pending, line))
            pending = None
        if pending is not None:
            raise ValueError(f"{path.name}: annotation at end of file without a sample")
    return vectors
