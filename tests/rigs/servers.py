"""Debian's real Prometheus and Alertmanager, each on a loopback port in a temporary dir.

``Alertmanager(root).start()`` and ``Prometheus(root, scrape=[...]).start()`` run the
binaries ``scripts/bootstrap --test`` installs (packages ``prometheus`` and
``prometheus-alertmanager``), wait until ``/-/ready`` answers, and ``stop()`` them.
``start()`` again reuses the same port, so a test can take a server down and bring it
back where its clients expect it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tests.rigs.wait import wait_until


def binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"none of {names} is installed: run scripts/bootstrap --test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> Any:
    return httpx.get(url, timeout=5).raise_for_status().json()


class _Server:
    """One server process, its port, its directory and its log."""

    def __init__(self, root: Path, name: str) -> None:
        self.root = root / name
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> _Server:
        with self.log.open("a") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.command()[0]} exited: {self.log.read_text()[-2000:]}")
            try:
                return httpx.get(self.url + "/-/ready", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=30, what=f"{self.command()[0]} ready")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        # the port is free once the process is gone; wait for the kernel to agree
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.05)


class Alertmanager(_Server):
    CONFIG = (
        "route:\n  receiver: none\n  group_by: [alertname, gateway, agent]\n"
        "receivers:\n  - name: none\n"
    )

    def __init__(self, root: Path, name: str = "alertmanager") -> None:
        super().__init__(root, name)
        (self.root / "alertmanager.yml").write_text(self.CONFIG)

    def command(self) -> list[str]:
        return [
            binary("prometheus-alertmanager", "alertmanager"),
            f"--config.file={self.root / 'alertmanager.yml'}",
            f"--storage.path={self.root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",  # one peer; clustering needs its own ports
        ]

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """The active alerts (``GET /api/v2/alerts``), those with ``labels`` only."""
        params = [("filter", f'{k}="{v}"') for k, v in labels.items()]
        answer = httpx.get(f"{self.url}/api/v2/alerts", params=params, timeout=5)
        return list(answer.raise_for_status().json())


class Prometheus(_Server):
    def __init__(
        self, root: Path, *, scrape: Sequence[str], rules: Sequence[Path] = (),
        interval_s: float = 1.0,
    ) -> None:
        super().__init__(root, "prometheus")
        targets = json.dumps(list(scrape))
        rule_files = json.dumps([str(p) for p in rules])
        every = f"{round(interval_s * 1000)}ms"
        (self.root / "prometheus.yml").write_text(
            f"global:\n  scrape_interval: {every}\n  evaluation_interval: {every}\n"
            f"rule_files: {rule_files}\n"
            "scrape_configs:\n  - job_name: failover-watcher\n"
            f"    static_configs:\n      - targets: {targets}\n"
        )

    def command(self) -> list[str]:
        return [
            binary("prometheus"),
            f"--config.file={self.root / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.root / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]

    def query(self, expr: str) -> dict[str, Any]:
        """``GET /api/v1/query``: the whole answer (status, data or error)."""
        # 400 for a bad expression: its body says why, so the status is not raised
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        return dict(answer.json())
