"""``failover-watcher simulate SCENARIO [--policy FILE|naive] [--json]``.

Runs a scenario (a TOML file, or the name of a bundled one) through the real parser,
taxonomy, decision core, pin store, dedup and card renderer on a virtual clock, and
prints the timeline of pin changes and cards, then the summary. With ``--json`` it
prints the summary in the stable shape documented in ``scenarios/README.md``
(``schema: 1``).

Exit codes: 0 ran (and every expectation of the scenario held for this policy);
1 an expectation in the scenario's ``[expect]`` table failed; 2 usage error (no such
scenario, an unreadable scenario or policy file).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from watcher.simulate import (
    CheckResult,
    PolicyFileError,
    ScenarioError,
    bundled_names,
    find_scenario,
    format_text,
    read_policy_file,
    simulate,
)


def register(subparsers: Any) -> None:
    names = ", ".join(bundled_names()) or "none"
    p = subparsers.add_parser(
        "simulate",
        help="replay an incident scenario through the real watcher on a virtual clock",
        description=(
            "Simulate a scenario: the gateway's fallback lines, probes answered per the "
            "scenario's timeline, the real core, pin store, dedup and cards. Prints the "
            "timeline and a summary (pin flips, cards sent and suppressed, paid minutes, "
            "minutes to failback)."
        ),
        epilog=f"Bundled scenarios: {names}.",
    )
    p.add_argument("scenario", help="a scenario .toml file, or the name of a bundled one")
    p.add_argument(
        "--policy",
        default="default",
        metavar="FILE|naive",
        help="'default' (the shipped policy), 'naive' (the original watcher), or a TOML "
        "file of Policy fields that override the default",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON (schema 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        scenario = find_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"failover-watcher simulate: {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 2
    fields: dict[str, Any] | None = None
    name = args.policy
    if name not in ("default", "naive"):
        try:
            fields = read_policy_file(name)
        except PolicyFileError as exc:
            print(f"failover-watcher simulate: policy {name}:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  - {problem}", file=sys.stderr)
            return 2
        name = f"file:{name}"
    summary = simulate(scenario, name, fields)
    checks = [CheckResult(**e) for e in summary.get("expectations", [])]
    if args.json:
        json.dump(summary, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_text(summary, checks))
    return 0 if all(c.held for c in checks) else 1
