"""``failover-watcher outbox [--json] [--requeue]``: what waits for each sink, and the
dead letters; ``--requeue`` puts the dead letters back once their cause is fixed.

Safe beside the running daemon: it opens the SQLite file itself (read-only without
``--requeue``), never through ``Outbox``, whose start-up recovery would take a card
the daemon is sending for an interrupted one. A requeue is one short transaction the
daemon's senders see at their next look (about a second).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from typing import Any

from watcher.cli.common import add_config_arg, report_config_error, settings_from
from watcher.config import ConfigError

DEAD_SHOWN = 20


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("outbox", help="alerts waiting per sink, dead letters; --requeue them")
    add_config_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable")
    p.add_argument("--requeue", action="store_true",
                   help="put every dead letter (all sinks) back in its queue")
    p.set_defaults(func=cmd_outbox)


def read(db: sqlite3.Connection) -> dict[str, Any]:
    """Per sink: rows by state, and the newest dead letters with their last error."""
    sinks: dict[str, Any] = {}
    cards = dict(db.execute("SELECT state, COUNT(*) FROM cards GROUP BY state").fetchall())
    dead = db.execute(
        "SELECT id, event, last_error FROM cards WHERE state='dead' ORDER BY id DESC LIMIT ?",
        (DEAD_SHOWN,),
    ).fetchall()
    sinks["telegram"] = {"counts": cards, "dead": [list(row) for row in dead]}
    has_queue = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type='table' AND name='sink_queue'"
    ).fetchone()
    if has_queue:
        for (sink,) in db.execute("SELECT DISTINCT sink FROM sink_queue ORDER BY sink"):
            counts = dict(db.execute(
                "SELECT state, COUNT(*) FROM sink_queue WHERE sink=? GROUP BY state", (sink,)
            ).fetchall())
            dead = db.execute(
                "SELECT id, event, last_error FROM sink_queue WHERE sink=? AND state='dead' "
                "ORDER BY id DESC LIMIT ?",
                (sink, DEAD_SHOWN),
            ).fetchall()
            sinks[sink] = {"counts": counts, "dead": [list(row) for row in dead]}
    return sinks


def requeue(db: sqlite3.Connection) -> dict[str, int]:
    with db:
        cards = db.execute(
            "UPDATE cards SET state='pending', last_error=NULL WHERE state='dead'"
        ).rowcount
        others = db.execute(
            "SELECT sink, COUNT(*) FROM sink_queue WHERE state='dead' GROUP BY sink"
        ).fetchall()
        db.execute("UPDATE sink_queue SET state='pending', last_error=NULL WHERE state='dead'")
    return {"telegram": cards, **{sink: int(n) for sink, n in others}}


def cmd_outbox(args: argparse.Namespace) -> int:
    from watcher.alerts.outbox import DEFAULT_FILENAME

    try:
        settings = settings_from(args)
    except ConfigError as exc:
        return report_config_error(exc, prog="outbox")
    path = settings.state_dir / DEFAULT_FILENAME
    if not path.exists():
        print(f"outbox: no outbox at {path} (has the daemon run yet?)", file=sys.stderr)
        return 1
    mode = "rw" if args.requeue else "ro"
    try:
        db = sqlite3.connect(f"file:{path}?mode={mode}", uri=True, timeout=10)
        requeued = requeue(db) if args.requeue else None
        sinks = read(db)
    except sqlite3.Error as exc:
        print(f"outbox: cannot {'update' if args.requeue else 'read'} {path}: {exc} "
              "(run it as the service user)", file=sys.stderr)
        return 1
    db.close()
    if args.json:
        print(json.dumps({"sinks": sinks, "requeued": requeued}, indent=2))
        return 0
    for sink, data in sinks.items():
        counts = ", ".join(f"{n} {state}" for state, n in sorted(data["counts"].items()))
        print(f"{sink}: {counts or 'empty'}")
        for row_id, event, error in data["dead"]:
            print(f"  dead #{row_id} {event}: {error}")
    if requeued is not None:
        print("requeued: " + ", ".join(f"{n} for {sink}" for sink, n in requeued.items()))
    return 0
