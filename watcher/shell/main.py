"""``failover-watcher run``: open the ``Watcher`` on a steady clock and run its ``Daemon``;
say in one line, never a traceback, why it cannot start."""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import sqlite3
from pathlib import Path
from typing import Any

from watcher.config import WatcherSettings
from watcher.gateway.chains import GatewayConfigError
from watcher.probe.providers import ProviderDirectory
from watcher.shell.loop import Daemon
from watcher.shell.snapshot import SnapshotError
from watcher.shell.watcher import Watcher
from watcher.support.statedir import SNAPSHOT_FILENAME

log = logging.getLogger(__name__)


def run(settings: WatcherSettings) -> int:
    """Entry point for ``failover-watcher run``. ``now`` is a ``SteadyClock`` so a
    wall-clock step cannot end cooldowns early (``watcher.shell.clock``)."""
    from watcher.shell.clock import SteadyClock, read_boot_id, saved_anchor

    # What the unit's UMask=0027 does, for a daemon started by hand too: SQLite's
    # -wal/-shm files, metrics.port and every other file keep out of "other".
    os.umask(os.umask(0o027) | 0o027)
    clock = SteadyClock(
        boot_id=read_boot_id(),
        saved=saved_anchor(Path(settings.state_dir) / SNAPSHOT_FILENAME),
    )
    from watcher.alerts.config import TokenUnavailable

    try:
        watcher = Watcher.open(settings, clock=clock)
        clock.bind(watcher.metrics.clock, lambda: watcher.state)
        _register_provider_secrets(settings, watcher.chain_source.config.providers)
        return asyncio.run(Daemon(watcher).run())
    except GatewayConfigError as exc:
        log.error("cannot read the gateway config %s: %s", settings.gateway_config, exc)
    except TokenUnavailable as exc:
        log.error("alerts.bot_token: %s; fix it, then restart (validate-config checks it)",
                  exc)
    except SnapshotError as exc:
        log.error("%s. Restore it from a backup, or move it away to start again from the "
                  "pin file (cooldowns and the journal position are then forgotten)", exc)
    except (OSError, sqlite3.Error) as exc:
        # Nearly always the state directory: its owner, its mode, or a full disk.
        where = getattr(exc, "filename", None) or settings.state_dir
        log.error("cannot use %s: %s (the state directory must be writable by user %s)",
                  where, getattr(exc, "strerror", None) or exc, getpass.getuser())
    return 1


def _register_provider_secrets(settings: WatcherSettings, gateway_providers: Any) -> None:
    """Known API keys are redacted from logs from the start (``watcher.support.redaction``)."""
    from watcher.probe.providers import register_provider_secrets

    try:
        directory = ProviderDirectory.build(settings.providers, gateway_providers)
    except ValueError:  # bad provider config: the prober reports it, without values
        return
    register_provider_secrets(directory)
