"""``failover-watcher run`` (the systemd service) and ``validate-config``."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from watcher.cli.common import add_config_arg, report_config_error, settings_from
from watcher.config import ConfigError, WatcherSettings
from watcher.gateway.chains import GatewayConfigError, load_gateway_config
from watcher.probe.providers import CredentialError
from watcher.support.logsetup import setup_logging


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("run", help="run the daemon (systemd ExecStart; sd_notify aware)")
    add_config_arg(p)
    p.set_defaults(func=cmd_run)
    v = sub.add_parser(
        "validate-config", help="check the config and the gateway's chains; list every error"
    )
    add_config_arg(v)
    v.add_argument(
        "--credentials-dir", type=Path, metavar="DIR",
        help="resolve cred:NAME as DIR/NAME, to check credential files outside systemd "
        "(their contents are never printed)",
    )
    v.set_defaults(func=cmd_validate)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        return report_config_error(exc, prog="run")
    setup_logging(settings.log_level)
    from watcher.shell.main import run

    return run(settings)


def cmd_validate(args: argparse.Namespace) -> int:
    try:
        settings = settings_from(args)
    except ConfigError as exc:
        return report_config_error(exc, prog="validate-config")
    problems, notes, agents = _runtime_problems(settings, args.credentials_dir)
    for note in notes:
        print(f"validate-config: note: {note}", file=sys.stderr)
    if problems:
        print(f"validate-config: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print(
        f"config ok: {agents} agent(s), state in {settings.state_dir}, "
        f"journal source {settings.journal.source}"
    )
    return 0


def _runtime_problems(
    settings: WatcherSettings, credentials_dir: Path | None
) -> tuple[list[str], list[str], int]:
    """What ``run`` would trip over that the config's types cannot say: the gateway's
    chains, the state directory, the journal, and every credential reference. Also
    how many agents the chains hold (0 when they cannot be read)."""
    problems: list[str] = []
    notes: list[str] = []
    agents = 0
    try:
        agents = len(load_gateway_config(settings.gateway_config).chains)
    except GatewayConfigError as exc:
        problems += [f"gateway config {settings.gateway_config}: {p}" for p in exc.problems]
    problems += _state_dir_problems(settings.state_dir, notes)
    problems += _source_problems(settings)
    environ = dict(os.environ)
    if credentials_dir is not None:
        environ["CREDENTIALS_DIRECTORY"] = str(credentials_dir)
    uses_cred = False
    if settings.alerts is not None:
        from watcher.alerts.config import TokenUnavailable, resolve_token

        uses_cred = settings.alerts.bot_token.startswith("cred:")
        if not (uses_cred and "CREDENTIALS_DIRECTORY" not in environ):
            try:
                resolve_token(settings.alerts.bot_token, environ=environ)
            except TokenUnavailable as exc:
                problems.append(f"alerts.bot_token: {exc}")
    for name, provider in sorted(settings.providers.items()):
        ref = provider.credential
        if ref is None:
            continue
        if ref.kind == "cred" and "CREDENTIALS_DIRECTORY" not in environ:
            uses_cred = True
            continue
        try:
            ref.resolve(environ)
        except CredentialError as exc:
            problems.append(f"providers.{name}.credential: {exc}")
    if uses_cred and "CREDENTIALS_DIRECTORY" not in environ:
        notes.append(
            "cred: references were not checked: $CREDENTIALS_DIRECTORY is only set under "
            "systemd. Check the files themselves with --credentials-dir DIR (the directory "
            "the unit's LoadCredential= reads, e.g. /etc/failover-watcher)"
        )
    return problems, notes, agents


def _state_dir_problems(state_dir: Path, notes: list[str]) -> list[str]:
    if not state_dir.exists():
        parent = next((p for p in state_dir.parents if p.exists()), None)
        if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
            notes.append(
                f"state_dir {state_dir} does not exist yet; under systemd the unit's "
                "StateDirectory= creates it, otherwise create it for this user"
            )
        return []
    if not state_dir.is_dir():
        return [f"state_dir {state_dir} is not a directory"]
    if not os.access(state_dir, os.R_OK | os.W_OK | os.X_OK):
        return [f"state_dir {state_dir} is not writable by user {getpass.getuser()}"]
    return []


def _source_problems(settings: WatcherSettings) -> list[str]:
    from watcher.source import SourceError, open_source

    j = settings.journal
    if j.source == "-":
        return []
    try:
        source = open_source(j.source, units=j.units, identifiers=j.identifiers,
                             start_at="tail")
        source.open()
        source.close()
    except SourceError as exc:
        return [f"journal.source {j.source}: {exc}"]
    except OSError as exc:
        return [f"journal.source {j.source}: {exc.strerror or exc}"]
    return []
