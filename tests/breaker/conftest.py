"""Fixtures for the breaker: a gateway config in the shape openclaw writes, and a TOML."""

from __future__ import annotations

from pathlib import Path

import pytest

# The gateway's own shape (see the log contract): defaults with inherited fallbacks,
# entries in both model forms, a legacy list entry, providers with secrets, and keys
# the breaker does not know about. Two-space indent and a final newline, as openclaw
# writes it.
GATEWAY_JSON = """{
  "meta": {
    "lastTouchedVersion": "2026.9.6",
    "lastTouchedAt": "2026-05-19T22:10:04.512Z"
  },
  "agents": {
    "defaults": {
      "model": {
        "primary": "ollama/kimi-k2.5:cloud",
        "fallbacks": [
          "openai/gpt-5.2",
          "ollama/qwen3:8b"
        ]
      },
      "workspace": "~/.openclaw/workspace",
      "maxConcurrent": 4
    },
    "entries": {
      "main": {
        "model": "openai/gpt-5.5"
      },
      "ops": {
        "model": {
          "primary": "ollama/qwen3-coder:480b-cloud",
          "fallbacks": [
            "openai/gpt-5.5",
            "openrouter/openrouter/owl-alpha",
            "ollama/qwen3:8b"
          ]
        },
        "thinking": "low"
      },
      "local": {
        "model": "ollama/qwen3:8b"
      },
      "bare": {}
    },
    "list": [
      {
        "id": "legacy",
        "model": "openai/gpt-5.3-codex",
        "fallbacks": [
          "ollama/qwen3:8b"
        ]
      }
    ]
  },
  "models": {
    "providers": {
      "openai": {
        "baseUrl": "https://api.openai.com/v1",
        "apiKey": "sk-test-0123456789abcdef",
        "api": "openai-responses",
        "models": [
          {
            "id": "gpt-5.5"
          }
        ]
      },
      "ollama": {
        "baseUrl": "http://127.0.0.1:11434",
        "api": "ollama",
        "models": []
      }
    }
  },
  "gateway": {
    "port": 18789,
    "bind": "loopback"
  }
}
"""

# The same chains as an operator keeps them: JSON5 with comments and trailing commas.
GATEWAY_JSON5 = """// openclaw.json: hand-edited, keep the comments
{
  agents: {
    defaults: {
      model: {
        primary: "ollama/kimi-k2.5:cloud",
        fallbacks: [
          "openai/gpt-5.2", // paid: only when kimi is down
          /* always there */ "ollama/qwen3:8b",
        ],
      },
    },
    entries: {
      main: { model: "openai/gpt-5.5" }, // the orchestrator
      ops: {
        model: {
          primary: "ollama/qwen3-coder:480b-cloud",
          fallbacks: [
            // the paid one first: it is the best at ops
            "openai/gpt-5.5",
            "ollama/qwen3:8b", // local last resort
          ],
        },
      },
    },
  },
}
"""

BREAKER_TOML = """
[breaker]
gateway_config = "{gateway}"
state_dir = "{state}"
journal = "{journal}"
units = []
timezone = "{tz}"
backups_keep = 3
cas_retries = 2
check_interval = 0.2

[breaker.providers.openai]
call_price = 0.10
daily_cap = 1.00
[breaker.providers.openai.model_prices]
"gpt-5.5" = 0.25

[breaker.providers.openrouter]
call_price = 0.01
daily_calls = 50
"""


@pytest.fixture
def gateway(tmp_path: Path) -> Path:
    directory = tmp_path / "home" / ".openclaw"
    directory.mkdir(parents=True)
    path = directory / "openclaw.json"
    path.write_text(GATEWAY_JSON, encoding="utf-8")
    path.chmod(0o600)
    return path


def write_toml(tmp_path: Path, gateway: Path, *, journal: str = "journal",
               tz: str = "Europe/Berlin") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        BREAKER_TOML.format(gateway=gateway, state=tmp_path / "state", journal=journal, tz=tz),
        encoding="utf-8",
    )
    return path
