"""The README's "Running several gateways" examples are real: Alertmanager's amtool,
Prometheus's promtool and the watcher's own config loader all accept them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.rigs.file_world import write_file_world
from tests.rigs.servers import binary
from watcher.config import load_settings

ROOT = Path(__file__).resolve().parents[2]
SECTION = (ROOT / "README.md").read_text().split("## Running several gateways", 1)[1]
SECTION = SECTION.split("\n## ", 1)[0]


def _block(lang: str, containing: str) -> str:
    blocks = re.findall(rf"```{lang}\n(.*?)```", SECTION, flags=re.S)
    (found,) = [b for b in blocks if containing in b]
    return found


def test_the_alertmanager_route_example_passes_amtool(tmp_path: Path) -> None:
    config = tmp_path / "alertmanager.yml"
    config.write_text(_block("yaml", "inhibit_rules"))
    done = subprocess.run([binary("amtool"), "check-config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_scrape_example_passes_promtool_with_the_shipped_rules(tmp_path: Path) -> None:
    text = _block("yaml", "scrape_configs").replace(
        "/etc/prometheus/failover-watcher.rules.yml",
        str(ROOT / "deploy" / "prometheus" / "failover-watcher.rules.yml"),
    )
    config = tmp_path / "prometheus.yml"
    config.write_text(text)
    done = subprocess.run([binary("promtool"), "check", "config", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "10 rules found" in done.stdout


def test_the_alertmanager_section_example_loads(tmp_path: Path) -> None:
    block = _block("toml", "[alertmanager]")
    config = write_file_world(tmp_path, {"nexus": ["ollama/a", "ollama/b"]}, extra_toml=block)
    settings = load_settings(config)
    assert settings.alertmanager is not None
    assert settings.alertmanager.instance == "vps-stockholm"
    assert settings.alertmanager.urls == ["http://10.0.0.5:9093", "http://10.0.0.6:9093"]
