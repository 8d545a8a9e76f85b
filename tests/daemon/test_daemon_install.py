"""The README's install recipe, run verbatim, ending with the daemon running as its
non-root service user.

The recipe's lines are taken from the README's "Install on a VPS" block and run as
written, by bash, with real ``sudo``, ``useradd``, ``git`` and ``./scripts/bootstrap``
(which builds its own virtualenv from Debian's python3, as on a fresh VPS). Three
things differ, each because of what a test machine is:

- it runs in a private mount namespace (``unshare --mount``) whose ``/etc``, ``/opt``
  and ``/var/lib`` are overlays: the new user, ``/etc/failover-watcher``,
  ``/opt/failover-watcher`` and the state directory vanish afterwards; and this
  machine runs no journald, so a volatile system journal is put where journald keeps
  one (``/run/log/journal/<machine-id>/system.journal``, group systemd-journal);
- ``<this repo>`` is this checkout, and the two "paste" lines read the pasted config
  and token from files;
- there is no systemd here, so ``systemctl enable --now`` is done by hand from the
  copied unit: ``StateDirectory=`` (the directory, owned by ``User=``),
  ``LoadCredential=`` (a private copy of the token) and ``ExecStart=`` run as
  ``User=``. ``systemctl status`` and ``journalctl -f`` are skipped.

The daemon then proves the token works by sending its start-up card (the gateway
config here does not load the plugin: PLUGIN_INACTIVE) to the fake Bot API, and the
recipe's last line, ``status``, runs verbatim.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rigs.daemon_rig import wait_until
from tests.rigs.wait import require_root
from watcher.fakes.botapi import FakeBotApi
from watcher.fakes.journal import write_journal

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "123456:install-recipe-token"
SKIPPED = ("sudo systemctl ", "systemctl status ", "journalctl ")



def recipe() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Install on a VPS", 1)[1]
    block = re.search(r"```\n(.*?)```", section, flags=re.S)
    assert block is not None, "no code block under 'Install on a VPS'"
    return [line for line in block.group(1).splitlines() if line.strip()]


def unit_value(unit: str, key: str) -> str:
    found = re.search(rf"^{key}=(.*)$", unit, flags=re.M)
    assert found is not None, key
    return found.group(1).strip()


@pytest.fixture
def sandbox() -> Iterator[Path]:
    """A directory other users can reach, for the overlays' upper layers and the
    gateway's config (pytest's tmp_path sits under a 0700 directory of root's)."""
    root = Path(tempfile.mkdtemp(prefix="fw-install-"))
    root.chmod(0o755)
    created = [p for p in (Path("/run/log/journal"),) if not p.exists()]
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for path in created:  # mount points, empty outside the namespace
            shutil.rmtree(path, ignore_errors=True)


def test_the_readme_install_recipe_works_verbatim_as_a_non_root_service_user(
    sandbox: Path,
) -> None:
    require_root()
    lines = recipe()
    unit = (ROOT / "systemd" / "failover-watcher.service").read_text()
    user = unit_value(unit, "User")
    exec_start = unit_value(unit, "ExecStart")
    state = Path("/var/lib") / unit_value(unit, "StateDirectory")
    cred_name, cred_source = unit_value(unit, "LoadCredential").split(":", 1)

    gateway = sandbox / "openclaw.json"
    gateway.write_text('{"agents": {"defaults": {"model": {"primary": "ollama/a",'
                       ' "fallbacks": ["deepseek/b", "ollama/c"]}}}}\n')
    gateway.chmod(0o644)
    bot = FakeBotApi(TOKEN).start()
    pastes = {
        "watcher.toml": f'''gateway_config = "{gateway}"
[alerts]
bot_token = "cred:{cred_name}"
chat_id = 4242
base_url = "{bot.base_url}"
[metrics]
port = 0
''',
        cred_name: TOKEN + "\n",
    }
    for name, text in pastes.items():
        (sandbox / f"paste-{name}").write_text(text)

    script = ["set -euo pipefail"]
    for top in ("etc", "opt", "var/lib"):
        flat = top.replace("/", "-")
        up, work = sandbox / f"{flat}-upper", sandbox / f"{flat}-work"
        up.mkdir()
        work.mkdir()
        script.append(f"mount -t overlay overlay -o lowerdir=/{top},upperdir={up},"
                      f"workdir={work} /{top}")
    # journald's volatile journal, as on any systemd machine (this one runs no journald):
    # root:systemd-journal, 0640, under /run/log/journal/<machine-id>/.
    machine = Path("/etc/machine-id").read_text().strip()
    system = write_journal(sandbox / "journal", ["[gateway] listening"], name="system.journal")
    runtime = Path("/run/log/journal")
    script += [f"mkdir -p {runtime}",
               f"mount -t tmpfs -o mode=0755 tmpfs {runtime}",
               f"install -d -g systemd-journal -m 2755 {runtime}/{machine}",
               f"install -g systemd-journal -m 0640 {system} {runtime}/{machine}/system.journal",
               f"cd {sandbox}"]
    ran: list[str] = []
    for line in lines:
        if line.startswith(SKIPPED):
            continue
        command = line.replace("<this repo>", shlex.quote(str(ROOT)))
        if "/dev/stdin" in command:
            name = next(n for n in pastes if f"/etc/failover-watcher/{n}" in command)
            command = command.split("#", 1)[0].rstrip() + f" < {sandbox}/paste-{name}"
        if command.startswith("/opt/failover-watcher/.venv/bin/failover-watcher status"):
            script += start_as_systemd_would(user, exec_start, state, cred_name, cred_source,
                                             sandbox)
        script.append(f"echo '+ {line[:60]}' >&2")
        script.append(command)
        ran.append(line)
    # systemctl stop: SIGTERM to the service's process (runuser only passes it on); the
    # daemon drains and exits 0, and runuser with it.
    script.append(f"pkill -TERM -u {user} -f ' run --config ' && wait $daemon")
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "bash", "-c",
             "\n".join(script)],
            capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(sandbox),
                 "LANG": "C.UTF-8"},
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
        assert any(line.startswith("sudo -u failover-watcher") for line in ran)
        assert "config ok" in done.stdout
        assert "Traceback" not in done.stdout + done.stderr
        assert "failover-watcher status at" in done.stdout  # the recipe's last line
        cards = wait_until(lambda: [m for m in bot.messages if m.chat_id == 4242],
                           what="the start-up card")
        assert "The pin steers nothing" in cards[0].plain_text
        assert TOKEN not in done.stdout + done.stderr
    finally:
        bot.stop()
    assert not Path("/etc/failover-watcher").exists()  # it all happened in the overlay
    assert not Path("/opt/failover-watcher").exists()


def start_as_systemd_would(
    user: str, exec_start: str, state: Path, cred_name: str, cred_source: str, sandbox: Path
) -> list[str]:
    """What ``systemctl enable --now`` does for this unit, by hand: StateDirectory=,
    LoadCredential= and ExecStart= as User=; then wait until it serves metrics."""
    creds = sandbox / "credentials"
    return [
        f"install -d -o {user} -g {user} -m 0750 {state}",
        f"install -d -o {user} -m 0500 {creds}",
        f"install -o {user} -m 0400 {cred_source} {creds}/{cred_name}",
        f"runuser -u {user} -- env CREDENTIALS_DIRECTORY={creds} {exec_start} "
        f"> {sandbox}/daemon.log 2>&1 & daemon=$!",
        f"for _ in $(seq 300); do [ -e {state}/metrics.port ] && break; "
        f"kill -0 $daemon || {{ cat {sandbox}/daemon.log >&2; exit 1; }}; sleep 0.1; done",
        f"[ -e {state}/metrics.port ] || {{ cat {sandbox}/daemon.log >&2; exit 1; }}",
        f"for _ in $(seq 100); do grep -q 'PLUGIN_INACTIVE' {sandbox}/daemon.log && break; "
        "sleep 0.1; done",
    ]


def test_the_recipe_names_the_files_the_unit_reads() -> None:
    """The pieces the verbatim run relies on stay consistent with the unit."""
    text = "\n".join(recipe())
    unit = (ROOT / "systemd" / "failover-watcher.service").read_text()
    assert unit_value(unit, "LoadCredential").split(":", 1)[1] in text
    assert "install -d -m 0750 -g failover-watcher /etc/failover-watcher" in text
