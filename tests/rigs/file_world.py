"""The smallest world an in-process ``Watcher`` runs in: chains, a text log, a config.

Tests that drive ``Watcher.apply`` directly (no journal, no fakes) all need the same
three files: an ``openclaw.json`` with the agents' chains, an empty gateway log for the
``file:`` source, and a ``watcher.toml`` pointing at both with probes and metrics off.
``write_file_world`` writes them under ``root`` and returns the config's path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path


def write_file_world(
    root: Path, chains: Mapping[str, Sequence[str]], *, extra_toml: str = "",
    top_toml: str = "", openclaw_path: Path | None = None,
) -> Path:
    """``extra_toml``: more tables (``[policy]``, ``[alerts]``, ...) appended as given;
    ``top_toml``: more top-level keys. ``openclaw_path``: an ``openclaw.json`` the test
    wrote itself (``chains`` are then not written)."""
    openclaw = {
        "agents": {
            "entries": {
                agent: {"model": {"primary": chain[0], "fallbacks": list(chain[1:])}}
                for agent, chain in chains.items()
            }
        },
        "models": {"providers": {"ollama": {"baseUrl": "http://127.0.0.1:9", "api": "ollama"}}},
    }
    if openclaw_path is None:
        openclaw_path = root / "openclaw.json"
        openclaw_path.write_text(json.dumps(openclaw))
    (root / "log.txt").write_text("")
    config = root / "watcher.toml"
    config.write_text(
        f'state_dir = "{root / "state"}"\n'
        f'gateway_config = "{openclaw_path}"\n'
        + top_toml
        + f'[journal]\nsource = "file:{root / "log.txt"}"\nstart_at = "head"\n'
        "[probes]\nenabled = false\n[metrics]\nenabled = false\n[plugin]\nrequired = false\n"
        + extra_toml
    )
    return config
