"""Is the fallback-pin plugin loaded so that this watcher's pin file steers the gateway?

Read-only: it looks at ``openclaw.json`` (``plugins.*``) and at the pin file's
permissions; it never writes either. ``lint-config``, ``status`` and the daemon's
start-up check share it, so they cannot disagree. The operator installs the plugin
with the gateway's own CLI (README, "The gateway plugin").
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import json5

PLUGIN_ID = "fallback-pin"
DEFAULT_PIN_FILE = "/var/lib/failover-watcher/fallback-state.json"


@dataclass(frozen=True)
class PluginCheck:
    """``problems`` empty: the pin can steer. ``facts`` are what was found, for humans."""

    problems: tuple[str, ...]
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "problems": list(self.problems), **self.facts}


def check_plugin(gateway_config: Path, pin_file: Path) -> PluginCheck:
    """Every reason the pin file at ``pin_file`` cannot steer the gateway configured by
    ``gateway_config``, all at once."""
    try:
        data = json5.loads(Path(gateway_config).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return PluginCheck((f"cannot read {gateway_config}: {exc}",))
    if not isinstance(data, Mapping):
        return PluginCheck((f"{gateway_config}: top level is not an object",))
    return check_plugin_config(data, Path(gateway_config), Path(pin_file))


def check_plugin_config(data: Mapping[str, Any], where: Path, pin_file: Path) -> PluginCheck:
    problems: list[str] = []
    plugins = _mapping(data.get("plugins"))
    entry = _mapping(_mapping(plugins.get("entries")).get(PLUGIN_ID))
    hooks = _mapping(entry.get("hooks"))
    config = _mapping(entry.get("config"))
    paths = _load_paths(plugins)
    folder = next((p for p in paths if _holds_plugin(p)), None)
    configured_pin = config.get("pinFile", DEFAULT_PIN_FILE)
    facts: dict[str, Any] = {
        "plugin_id": PLUGIN_ID,
        "configured": bool(entry) or folder is not None,
        "enabled": entry.get("enabled") is True,
        "allow_conversation_access": hooks.get("allowConversationAccess") is True,
        "plugin_folder": str(folder) if folder else None,
        "pin_file": str(configured_pin),
        "max_age_s": config.get("maxAgeSeconds", 180),
    }
    if plugins.get("enabled") is False:
        problems.append("plugins.enabled is false: the gateway loads no plugin at all")
    if folder is None:
        problems.append(
            f"no folder in plugins.load.paths holds the {PLUGIN_ID} plugin "
            "(openclaw plugins install --link <repo>/gateway-plugin)"
        )
    if entry.get("enabled") is not True:
        problems.append(f"plugins.entries.{PLUGIN_ID}.enabled is not true")
    deny = plugins.get("deny")
    if isinstance(deny, list) and PLUGIN_ID in deny:
        problems.append(f"plugins.deny lists {PLUGIN_ID}")
    allow = plugins.get("allow")
    if isinstance(allow, list) and allow and PLUGIN_ID not in allow:
        problems.append(f"plugins.allow is set and does not list {PLUGIN_ID}")
    if hooks.get("allowConversationAccess") is not True:
        problems.append(
            f"plugins.entries.{PLUGIN_ID}.hooks.allowConversationAccess is not true: the "
            "gateway blocks the plugin's before_model_resolve and agent_end hooks"
        )
    if os.path.abspath(str(configured_pin)) != os.path.abspath(str(pin_file)):
        problems.append(
            f"the plugin reads {configured_pin}, but this watcher writes {pin_file} "
            f"(plugins.entries.{PLUGIN_ID}.config.pinFile)"
        )
    max_age = facts["max_age_s"]
    if isinstance(max_age, int | float) and 0 < max_age < 60:
        problems.append(
            f"plugins.entries.{PLUGIN_ID}.config.maxAgeSeconds is {max_age}: under 60 s a "
            "slow heartbeat stands the plugin down"
        )
    owner = _gateway_user(where)
    if owner is not None:
        facts["gateway_user"] = owner.pw_name
        reason = _unreadable_by(pin_file, owner)
        facts["gateway_user_can_read_pin"] = reason is None
        if reason is not None:
            problems.append(f"the gateway's user {owner.pw_name} cannot read {pin_file}: {reason}")
    return PluginCheck(tuple(problems), facts)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _load_paths(plugins: Mapping[str, Any]) -> list[Path]:
    load = plugins.get("load")
    raw = load.get("paths") if isinstance(load, Mapping) else None
    return [Path(os.path.expanduser(p)) for p in raw or [] if isinstance(p, str)]


def _holds_plugin(path: Path) -> bool:
    """``path`` is the plugin folder (its manifest names our id), or a folder of them."""
    for manifest in (path / "openclaw.plugin.json", path / PLUGIN_ID / "openclaw.plugin.json"):
        try:
            doc = json5.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, Mapping) and doc.get("id") == PLUGIN_ID:
            return True
    return False


def _gateway_user(config_path: Path) -> pwd.struct_passwd | None:
    """The gateway runs as the owner of its ``openclaw.json``."""
    try:
        return pwd.getpwuid(os.stat(config_path).st_uid)
    except (OSError, KeyError):
        return None


def _unreadable_by(pin_file: Path, user: pwd.struct_passwd) -> str | None:
    """Why ``user`` could not read ``pin_file`` (None: it can), from the mode bits of the
    file and of every folder above it. A missing file is not a problem yet: the watcher
    creates it (mode 0640) at its first start."""
    if user.pw_uid == 0:
        return None
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    target = Path(os.path.abspath(pin_file))
    for part in [*reversed(target.parents), target]:
        try:
            st = os.stat(part)
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"cannot stat {part}: {exc.strerror}"
        need = stat.S_IROTH if part == target else stat.S_IXOTH
        if st.st_uid == user.pw_uid:
            need <<= 6
        elif st.st_gid in groups:
            need <<= 3
        if not st.st_mode & need:
            what = "read" if part == target else "enter"
            return f"no permission to {what} {part} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None
