"""Who wrote ``openclaw.json``: the breaker, or someone else.

The breaker (the one writer of the gateway's config the project ships) records the
sha256 of every text it writes in its ledger, ``<breaker state_dir>/ledger.json``,
under ``written_sha256``. When the chains change, the watcher hashes the bytes it
read and looks them up there. It only reads that file (as JSON: the breaker's code
is not imported, so no watcher module can reach its writer).
"""

from __future__ import annotations

import json
from pathlib import Path

BREAKER = "failover-breaker"
LEDGER_NAME = "ledger.json"


def writer_of(sha256: str, breaker_state_dir: Path | None) -> str | None:
    """``"failover-breaker"`` when its ledger names this text, else None ("not the
    breaker"); an unreadable or missing ledger is not the breaker either."""
    if breaker_state_dir is None:
        return None
    try:
        data = json.loads((Path(breaker_state_dir) / LEDGER_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    written = data.get("written_sha256") if isinstance(data, dict) else None
    return BREAKER if isinstance(written, list) and sha256 in written else None
