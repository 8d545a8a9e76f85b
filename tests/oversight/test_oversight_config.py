"""``[control]``: validated with the rest of the config; validate-config lists errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.cli import main


def test_validate_config_reports_every_problem_of_the_control_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[control]\nenabled = true\nbutton_ttl_s = -1\nrate_per_minute = 0\n")
    assert main(["validate-config", "--config", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "control.button_ttl_s" in err and "control.rate_per_minute" in err

    empty = tmp_path / "empty.toml"
    empty.write_text("[control]\nenabled = true\n")
    assert main(["validate-config", "--config", str(empty)]) == 1
    assert "empty allowed_user_ids: nobody could act" in capsys.readouterr().err

    no_bot = tmp_path / "nobot.toml"
    no_bot.write_text("[control]\nenabled = true\nallowed_user_ids = [42]\n")
    assert main(["validate-config", "--config", str(no_bot)]) == 1
    assert "control.enabled needs an [alerts] section" in capsys.readouterr().err
