"""The pin lock is the one flock(1) takes, and concurrent editors lose no update."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

import filelock
import pytest

from tests.pinstore.conftest import PIN_EDIT, PYTHON, ROOT, run_pin_edit
from watcher.pins import schema as pinfile
from watcher.pins.schema import ModelHealthRecord, PinFile
from watcher.pins.store import PinRead, PinStore, RejectedEdit

# The same increment, in jq, for the flock(1) editors; the model allows the models map.
JQ_INCREMENT = '.models[$k] = ((.models[$k] // {state: "healthy"}) | .probe_streak += 1)'


def increment(key: str) -> object:
    def bump(current: PinRead) -> PinFile:
        assert not isinstance(current.edit, RejectedEdit), current.edit
        models = dict(current.pins.models)
        old = models.get(key, ModelHealthRecord(state="healthy"))
        models[key] = old.model_copy(update={"probe_streak": old.probe_streak + 1})
        return current.pins.model_copy(update={"models": models})

    return bump


def test_flock_command_holding_the_lock_keeps_the_store_out(pin_path: Path) -> None:
    store = PinStore(pin_path, lock_timeout=0.2)
    store.read()
    with subprocess.Popen(
        ["flock", str(store.lock_path), "-c", "echo held; read _"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert holder.stdout.readline() == "held\n"
            with pytest.raises(filelock.Timeout):
                store.read()
        finally:
            holder.stdin.write("go\n")
            holder.stdin.flush()
        assert holder.wait(timeout=10) == 0
    store.read()  # free again


def test_store_holding_the_lock_keeps_flock_command_out(pin_path: Path) -> None:
    store = PinStore(pin_path)
    with store.locked() as txn:
        txn.read()
        busy = subprocess.run(["flock", "-n", str(store.lock_path), "true"], check=False)
        assert busy.returncode == 1, "flock -n must find the lock taken"
    free = subprocess.run(["flock", "-n", str(store.lock_path), "true"], check=False)
    assert free.returncode == 0


PROCESS_WORKER = """
import sys
from tests.pinstore.test_pinstore_lock import increment
from watcher.pins.store import PinStore
store = PinStore(sys.argv[1], lock_timeout=60)
for _ in range(int(sys.argv[3])):
    store.update(increment(sys.argv[2]))
"""

JQ_WORKER = """
for i in $(seq "$N"); do
  flock -w 60 "$LOCK" sh -c 'jq --arg k "$KEY" "$FILTER" "$PIN" > "$PIN.$KEY" &&
    mv "$PIN.$KEY" "$PIN"' || exit 1
done
"""


def test_threads_processes_and_flock_jq_editors_lose_no_update(pin_path: Path) -> None:
    n = 40
    shared = PinStore(pin_path, lock_timeout=60)
    shared.update(lambda _read: PinFile())
    expected: dict[str, int] = {}

    def thread_worker(store: PinStore, key: str) -> None:
        for _ in range(n):
            store.update(increment(key))  # type: ignore[arg-type]

    threads = []
    for i, store in enumerate(
        [shared, shared, PinStore(pin_path, lock_timeout=60), PinStore(pin_path, lock_timeout=60)]
    ):
        key = f"thread-{i}"
        expected[key] = n
        threads.append(threading.Thread(target=thread_worker, args=(store, key), daemon=True))

    invalid_reads: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        """A gateway reading without the lock must always see a whole, valid file."""
        while not stop.is_set():
            try:
                pinfile.loads(pin_path.read_bytes())
            except (ValueError, FileNotFoundError) as exc:
                invalid_reads.append(str(exc))
            stop.wait(0.002)

    procs = []
    for i in range(2):
        key = f"process-{i}"
        expected[key] = n
        procs.append(
            subprocess.Popen([PYTHON, "-c", PROCESS_WORKER, str(pin_path), key, str(n)], cwd=ROOT)
        )
    for i in range(2):
        key = f"jq-{i}"
        expected[key] = n
        env = {
            **os.environ,
            "N": str(n),
            "LOCK": str(shared.lock_path),
            "KEY": key,
            "FILTER": JQ_INCREMENT,
            "PIN": str(pin_path),
        }
        procs.append(subprocess.Popen(["bash", "-c", JQ_WORKER], env=env))
    edits = 6
    expected["pin-edit"] = edits
    pin_edit_env = {**os.environ, "FAILOVER_WATCHER_PYTHON": PYTHON}
    pin_edit_loop = (
        f'for i in $(seq {edits}); do "$0" --pin "$1" --timeout 60 --arg k pin-edit "$2" >/dev/null'
        " || exit 1; done"
    )
    procs.append(
        subprocess.Popen(
            ["bash", "-c", pin_edit_loop, str(PIN_EDIT), str(pin_path), JQ_INCREMENT],
            env=pin_edit_env,
        )
    )
    watcher_reader = threading.Thread(target=reader, daemon=True)
    watcher_reader.start()
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join(timeout=120)
            assert not t.is_alive(), "a writer thread is stuck"
        for p in procs:
            assert p.wait(timeout=120) == 0
    finally:
        stop.set()
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    watcher_reader.join()

    final = shared.read().pins
    counts = {key: record.probe_streak for key, record in final.models.items()}
    assert counts == expected
    assert invalid_reads == []


def test_pin_edit_waits_for_the_watchers_lock_and_then_applies(pin_path: Path) -> None:
    store = PinStore(pin_path)
    store.update(lambda _read: PinFile())
    with store.locked() as txn:
        txn.read()
        refused = run_pin_edit(pin_path, "--timeout", "0.2", JQ_INCREMENT, "--arg", "k", "x")
    assert refused.returncode == 2
    assert "timed out" in refused.stderr
    done = run_pin_edit(pin_path, "--arg", "k", "x", JQ_INCREMENT)
    assert done.returncode == 0, done.stderr
    assert store.read().pins.models["x"].probe_streak == 1
