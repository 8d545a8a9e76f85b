"""``failover-watcher classify [TEXT|FILE|-] [--json]``: the dry-run tool for the parser
and the taxonomy, in the manner of ``fail2ban-regex``.

It runs the production ``parse_any`` + ``classify`` over a literal line, a file or stdin
and says what they made of it: counts per failure class and per decision, which
signatures fired, the lines that carried a fallback marker but could not be read, and
how much chatter was ignored. Nothing is written anywhere.

``--json`` shape (stable; keys are always present, counts may be zero)::

    {
      "taxonomy_version": "2026.12.2",
      "source": "<file path, '-' for stdin, or 'text'>",
      "lines": {"total": int, "records": int, "chatter": int, "unparsed": int},
      "decisions": {"<decision>": {"lines": int, "events": int}, ...all four...},
      "classes": {"<failure class>": {"lines": int, "events": int}, ...every class...,
                  "none": {...}},     # not a failure: successes, cooldown probes
      "signatures": {"<signature id>": int, ...only those that fired...},
      "chain_stopped": int,
      "lane_hints": {"lines": int, "agents": {"<agent id>": int}},
      "plugin": {"outcomes": {"ok": int, "error": int}, "states": int,
                 "agents": {"<agent id>": int}},
      "unparsed": [{"line": int, "why": str, "text": str}, ...at most --max-unparsed],
      "unparsed_omitted": int
    }

``events`` counts ``1 + N`` for a line with ``(N duplicates suppressed in last 30s)``:
the gateway dropped N identical failures, they still happened.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from watcher.classify.taxonomy import TAXONOMY, TAXONOMY_VERSION, FailureClass, classify
from watcher.parse.lines import parse_any
from watcher.parse.records import (
    ChainStopped,
    Decision,
    FallbackDecision,
    LaneHint,
    PluginState,
    RunOutcome,
    Unparsed,
)

NO_FAILURE = "none"
_READ_CHUNK = 1 << 20


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "classify",
        help="run the production parser and failure taxonomy over text, a file or stdin",
        description=(
            "Parse and classify gateway log lines (console, journalctl output or OpenClaw "
            "JSONL) and print per-class and per-decision counts, the signatures that fired, "
            "and the lines that looked like fallback lines but could not be read."
        ),
    )
    p.add_argument(
        "source",
        nargs="?",
        default="-",
        metavar="TEXT|FILE|-",
        help="a log line (or several, newline-separated), a file, or - for stdin (default)",
    )
    p.add_argument("--json", action="store_true", help="print the stable JSON shape")
    p.add_argument(
        "--max-unparsed",
        type=int,
        default=20,
        metavar="N",
        help="list at most N unparsed lines (default 20)",
    )
    p.set_defaults(func=run)


@dataclass
class Tally:
    """Counts over one run of classify. Mutable on purpose: it is an accumulator."""

    max_unparsed: int = 20
    total: int = 0
    chatter: int = 0
    records: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    decision_events: Counter[str] = field(default_factory=Counter)
    classes: Counter[str] = field(default_factory=Counter)
    class_events: Counter[str] = field(default_factory=Counter)
    signatures: Counter[str] = field(default_factory=Counter)
    chain_stopped: int = 0
    lane_hints: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    plugin_states: int = 0
    outcome_agents: Counter[str] = field(default_factory=Counter)
    agents: Counter[str] = field(default_factory=Counter)
    unparsed: list[tuple[int, str, str]] = field(default_factory=list)
    unparsed_count: int = 0

    def add(self, lineno: int, line: bytes) -> None:
        self.total += 1
        result = parse_any(line)
        if result is None:
            self.chatter += 1
            return
        if isinstance(result, Unparsed):
            self.unparsed_count += 1
            if len(self.unparsed) < self.max_unparsed:
                self.unparsed.append((lineno, result.why, result.text))
            return
        self.records += 1
        if isinstance(result, LaneHint):
            self.lane_hints += 1
            self.agents[result.agent_id] += 1
            return
        if isinstance(result, RunOutcome):
            self.outcomes["ok" if result.ok else "error"] += 1
            self.outcome_agents[result.agent_id] += 1
            return
        if isinstance(result, PluginState):
            self.plugin_states += 1
            return
        events = 1
        if isinstance(result, FallbackDecision):
            events = result.occurrences
            self.decisions[result.decision.value] += 1
            self.decision_events[result.decision.value] += events
        elif isinstance(result, ChainStopped):
            self.chain_stopped += 1
        c = classify(result)
        key = c.failure_class.value if c.failure_class is not None else NO_FAILURE
        self.classes[key] += 1
        self.class_events[key] += events
        self.signatures[c.signature] += 1

    def as_json(self, source: str) -> dict[str, Any]:
        class_keys = [fc.value for fc in FailureClass] + [NO_FAILURE]
        return {
            "taxonomy_version": TAXONOMY_VERSION,
            "source": source,
            "lines": {
                "total": self.total,
                "records": self.records,
                "chatter": self.chatter,
                "unparsed": self.unparsed_count,
            },
            "decisions": {
                d.value: {"lines": self.decisions[d.value], "events": self.decision_events[d.value]}
                for d in Decision
            },
            "classes": {
                k: {"lines": self.classes[k], "events": self.class_events[k]} for k in class_keys
            },
            "signatures": dict(sorted(self.signatures.items(), key=lambda kv: (-kv[1], kv[0]))),
            "chain_stopped": self.chain_stopped,
            "lane_hints": {"lines": self.lane_hints, "agents": dict(sorted(self.agents.items()))},
            "plugin": {
                "outcomes": {"ok": self.outcomes["ok"], "error": self.outcomes["error"]},
                "states": self.plugin_states,
                "agents": dict(sorted(self.outcome_agents.items())),
            },
            "unparsed": [{"line": n, "why": why, "text": text} for n, why, text in self.unparsed],
            "unparsed_omitted": self.unparsed_count - len(self.unparsed),
        }


def run(args: argparse.Namespace) -> int:
    if args.max_unparsed < 0:
        print("classify: --max-unparsed must be 0 or more", file=sys.stderr)
        return 2
    tally = Tally(max_unparsed=args.max_unparsed)
    source: str = args.source
    if source == "-":
        label = "-"
        _feed(tally, _split_lines(sys.stdin.buffer))
    elif os.path.isfile(source):
        label = source
        try:
            with open(source, "rb") as fh:
                _feed(tally, _split_lines(fh))
        except OSError as exc:
            print(f"classify: cannot read {source}: {exc.strerror}", file=sys.stderr)
            return 2
    elif os.path.isdir(source):
        print(
            f"classify: {source} is a directory; classify reads a file, text or stdin "
            "(use `replay` for a journal directory)",
            file=sys.stderr,
        )
        return 2
    elif _looks_like_path(source):
        print(
            f"classify: no such file: {source} (pass a log line in quotes to classify text)",
            file=sys.stderr,
        )
        return 2
    else:
        label = "text"
        _feed(tally, enumerate(source.encode("utf-8", "surrogateescape").split(b"\n"), 1))
    if args.json:
        json.dump(tally.as_json(label), sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render(tally, label))
    return 0


def _looks_like_path(arg: str) -> bool:
    """A single token with no ``=`` is meant as a file name; log lines have spaces and
    ``key=value`` fields."""
    return "\n" not in arg and " " not in arg.strip() and "=" not in arg


def _split_lines(fh: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """Split on ``\\n`` only (``str.splitlines`` would also split on \\x1c, \\x85, ...),
    reading in chunks so a huge file or an endless pipe costs bounded memory per line."""
    lineno = 0
    rest = b""
    while True:
        chunk = fh.read(_READ_CHUNK)
        if not chunk:
            break
        parts = (rest + chunk).split(b"\n")
        rest = parts.pop()
        if len(rest) > 4 * _READ_CHUNK:  # a line with no end in sight: keep a prefix
            rest = rest[:_READ_CHUNK]
        for part in parts:
            lineno += 1
            yield lineno, part
    if rest:
        yield lineno + 1, rest


def _feed(tally: Tally, lines: Iterable[tuple[int, bytes]]) -> None:
    for lineno, line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip():
            continue
        tally.add(lineno, line)


def render(tally: Tally, label: str) -> str:
    """The human report: what was read, what it means, what could not be read."""
    out: list[str] = []
    w = out.append
    w(f"classify: {label}  (taxonomy {TAXONOMY_VERSION})\n")
    w(
        f"Lines: {tally.total} read, {tally.records} records, "
        f"{tally.chatter} chatter ignored, {tally.unparsed_count} unparsed\n"
    )
    n_dec = sum(tally.decisions.values())
    n_ev = sum(tally.decision_events.values())
    w(f"\nDecisions: {n_dec} lines, {n_ev} events (suppressed duplicates count as events)\n")
    for d in Decision:
        lines, events = tally.decisions[d.value], tally.decision_events[d.value]
        extra = f"  ({events} events)" if events != lines else ""
        w(f"  {d.value:<26}{lines:>6}{extra}\n")
    if tally.chain_stopped:
        w(f"  {'chain stopped':<26}{tally.chain_stopped:>6}\n")
    w("\nFailure classes:\n")
    w(f"  {'class':<16}{'lines':>6}{'events':>8}  transient  evidence  cooldown\n")
    shown = False
    for fc in FailureClass:
        lines = tally.classes[fc.value]
        if not lines:
            continue
        shown = True
        info = TAXONOMY[fc]
        w(
            f"  {fc.value:<16}{lines:>6}{tally.class_events[fc.value]:>8}  "
            f"{_yn(info.transient):<9}  {_yn(info.health_evidence):<8}  "
            f"{_yn(info.starts_cooldown)}\n"
        )
    if tally.classes[NO_FAILURE]:
        w(
            f"  {'(no failure)':<16}{tally.classes[NO_FAILURE]:>6}"
            f"{tally.class_events[NO_FAILURE]:>8}  successes and cooldown probes\n"
        )
        shown = True
    if not shown:
        w("  (no fallback decisions found)\n")
    if tally.signatures:
        w("\nSignatures that decided:\n")
        for sig, count in sorted(tally.signatures.items(), key=lambda kv: (-kv[1], kv[0])):
            w(f"  {sig:<36}{count:>6}\n")
    if tally.outcomes or tally.plugin_states:
        w(
            f"\nGateway plugin: {tally.outcomes['ok']} run(s) ok, {tally.outcomes['error']} "
            f"failed, {tally.plugin_states} state line(s)\n"
        )
    if tally.lane_hints:
        agents = ", ".join(f"{a} ({n})" for a, n in sorted(tally.agents.items()))
        w(f"\nLane hints: {tally.lane_hints} (agents: {agents})\n")
    if tally.unparsed_count:
        w(
            f"\nUnparsed: {tally.unparsed_count} line(s) carried a fallback marker but could not "
            "be read"
        )
        if tally.unparsed_count > len(tally.unparsed):
            w(f"; showing the first {len(tally.unparsed)}")
        w("\n")
        for lineno, why, text in tally.unparsed:
            w(f"  line {lineno}: {why}\n    {_printable(text)}\n")
    return "".join(out)


def _yn(flag: bool) -> str:
    return "yes" if flag else "no"


def _printable(text: str, limit: int = 160) -> str:
    clean = "".join(ch if ch.isprintable() else "\N{REPLACEMENT CHARACTER}" for ch in text)
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"
