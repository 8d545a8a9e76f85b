"""``failover-watcher replay SOURCE``: what the production watcher would have done.

Runs the real parser, taxonomy, core, pin store and dedup over a recorded journal
directory or file, an export, a JSONL file log or plain text, on the recorded clock,
in a temporary state directory (the live pin file is never touched). Prints the
transitions and cards it would have produced, and what dedup would have suppressed.
It is the what-if tool for policy changes: ``--policy naive`` or a TOML of Policy
fields. Probes are not replayed (a journal holds no probe answers), so failbacks
that need probes do not happen here; use ``simulate`` for those.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from watcher.cli.common import add_config_arg, report_config_error, settings_from
from watcher.config import ConfigError
from watcher.core.events import Tick
from watcher.core.policy import Policy


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("replay", help="run the production core over a recorded log")
    p.add_argument("source", help="journal dir or file, export, JSONL or text file, or -")
    add_config_arg(p)
    p.add_argument("--openclaw", type=Path, help="gateway config for the chains")
    p.add_argument("--policy", help="'naive' or a TOML file of Policy fields")
    p.add_argument("--state-dir", type=Path, help="keep the replay's state here (default: temp)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_replay)


MAX_TICKS_PER_GAP = 1000


def _policy(arg: str | None, default: Policy) -> Policy:
    if arg is None:
        return default
    if arg == "naive":
        return Policy.naive()
    return Policy(**tomllib.loads(Path(arg).read_text(encoding="utf-8")))


def _unfit_state_dir(path: Path, live: Path) -> str | None:
    """Why ``path`` must not hold a replay's state, or None. A replay writes pins,
    cooldowns and audit records with the recorded clock's times: into a live (or any
    used) state directory that would rewrite the truth of a running watcher."""
    if path.resolve() == live.resolve():
        return "it is this config's live state_dir"
    if path.exists() and not path.is_dir():
        return "it is not a directory"
    if path.is_dir():
        entries = sorted(p.name for p in path.iterdir())
        if entries:
            shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
            return f"it is not empty ({shown})"
    return None


def cmd_replay(args: argparse.Namespace) -> int:
    from watcher.shell.batches import events_of
    from watcher.shell.watcher import Watcher
    from watcher.source import SourceError, open_source

    try:
        base = settings_from(args)
        policy = _policy(args.policy, base.policy)
    except ConfigError as exc:
        return report_config_error(exc, prog="replay")
    except (OSError, ValueError) as exc:
        print(f"replay: bad --policy: {exc}", file=sys.stderr)
        return 2
    if args.state_dir is not None:
        problem = _unfit_state_dir(args.state_dir, base.state_dir)
        if problem:
            print(f"replay: refusing --state-dir {args.state_dir}: {problem}. Give a new or "
                  "empty directory, or leave --state-dir out for a temporary one.",
                  file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="fw-replay-") as tmp:
        state_dir = args.state_dir or Path(tmp)
        # model_copy, not a re-validation of model_dump(): a dumped CredentialRef is a
        # dict the provider validator rightly refuses, and re-reading the environment
        # here could change settings behind the operator's back.
        overrides: dict[str, Any] = {
            "state_dir": Path(state_dir),
            "alerts": None,
            "probes": base.probes.model_copy(update={"enabled": False}),
            "metrics": base.metrics.model_copy(update={"enabled": False}),
            "policy": policy,
        }
        if args.openclaw:
            overrides["gateway_config"] = Path(args.openclaw)
        settings = base.model_copy(update=overrides)
        clock = [0.0]
        try:
            watcher = Watcher.open(settings, clock=lambda: clock[0])
            source = open_source(
                args.source,
                follow=False,
                start_at="head",
                catch_up_age=math.inf,
                units=settings.journal.units if args.source.startswith("journal") else (),
            )
            source.open()
        except (SourceError, OSError, ValueError) as exc:
            print(f"replay: {exc}", file=sys.stderr)
            return 2
        sentences: list[tuple[float, str]] = []
        last_tick = None
        records = 0

        async def drain() -> None:
            nonlocal last_tick, records
            async for batch in source.batches():
                for event in events_of(batch, source, watcher.metrics.watcher):
                    ts = getattr(getattr(event, "record", None), "ts", None)
                    if ts is not None:
                        clock[0] = max(clock[0], ts)
                    if last_tick is None:
                        last_tick = clock[0]
                    # Ticks on the recorded clock expire holds and decay flap scores;
                    # what they change shows up as transitions, not as decisions.
                    step = settings.tick_interval_s
                    missed = int((clock[0] - last_tick) // step)
                    if missed > MAX_TICKS_PER_GAP:
                        # A quiet night, or a lying far-future timestamp: what ticks
                        # do (expire holds, decay flap scores) depends on the time they
                        # carry, not on how many there were; one tick per step over
                        # 73 years would never finish.
                        last_tick += (missed - 1) * step
                    while clock[0] - last_tick >= step:
                        last_tick += step
                        watcher.apply([Tick()], now=last_tick)
                    records += 1
                    for s in watcher.apply([event], now=clock[0]):
                        sentences.append((clock[0], s))

        asyncio.run(drain())
        source.close()
        status = watcher.intake.status(clock[0])
        cards = watcher.intake.outbox.cards()
        out = {
            "schema": 1,
            "policy": policy.version,
            "records": records,
            "transitions": [
                {
                    "ts": c.alert.ts,
                    "type": c.event,
                    "agents": list(c.alert.agents),
                    "from": c.alert.from_model,
                    "to": c.alert.to_model,
                }
                for c in cards
            ],
            "cards_sent": len(cards),
            "suppressed_last_hour": status["suppressed_last_hour"],
            "decisions": [s for _, s in sentences if s],
            "final_pins": {a: s.serving for a, s in sorted(watcher.state.agents.items())},
        }
        watcher.intake.outbox.close()
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    from watcher.pins.schema import iso

    print(f"replayed {records} record(s) under policy {policy.version}")
    for c in out["transitions"]:
        print(
            f"  {iso(c['ts'])}  {c['type']:<22} {','.join(c['agents']) or '-':<16} "
            f"{c['from'] or '-'} -> {c['to'] or '-'}"
        )
    print(f"cards that would be sent: {out['cards_sent']}")
    sup = out["suppressed_last_hour"]
    total = sum(v["total"] for v in sup.values())
    print(f"cards dedup would suppress (last hour of the replay): {total}")
    for key, v in sup.items():
        print(f"  {v['total']:>4}  {key}")
    print("final pins: " + ", ".join(f"{a}={m}" for a, m in out["final_pins"].items()))
    return 0
