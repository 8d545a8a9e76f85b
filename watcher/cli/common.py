"""Helpers every subcommand shares: loading the config, reporting its errors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from watcher.config import DEFAULT_CONFIG, ConfigError, WatcherSettings, load_settings


def add_config_arg(parser: argparse.ArgumentParser, *, nested: bool = False) -> None:
    """``--config F``. ``nested``: the parser is a sub-command of one that also takes it
    (``pin --config F hold ...`` and ``pin hold ... --config F`` both work): its
    default must not overwrite the value the outer parser already read."""
    parser.add_argument(
        "--config",
        type=Path,
        default=argparse.SUPPRESS if nested else None,
        help=f"watcher TOML config (default {DEFAULT_CONFIG} if it exists)",
    )


def settings_from(args: argparse.Namespace) -> WatcherSettings:
    """Load the config named by ``--config`` (or the default path when present).

    Raises ``ConfigError``; commands report it with ``report_config_error``."""
    path = args.config
    if path is None and DEFAULT_CONFIG.is_file():
        path = DEFAULT_CONFIG
    return load_settings(path)


def report_config_error(exc: ConfigError, *, prog: str) -> int:
    print(
        f"{prog}: the configuration is invalid ({len(exc.problems)} problem(s)):", file=sys.stderr
    )
    for problem in exc.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1
