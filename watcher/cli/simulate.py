"""``failover-watcher simulate SCENARIO [--policy FILE|naive|original] [--json]``, and
``failover-watcher simulate --seeds 1-20 [SCENARIO ...] [--json]``.

Runs a scenario (a TOML file, or the name of a bundled one) through the real parser,
taxonomy, decision core, pin store, dedup and card renderer on a virtual clock, and
prints the timeline of pin changes and cards, then the summary. With ``--json`` it
prints the summary in the stable shape documented in ``scenarios/README.md``
(``schema: 1``).

With ``--seeds`` it sweeps: every named scenario (default: every bundled one) under
the original, naive and default policies, once per seed, and prints per scenario and
policy the worst and median failback time after the primary's real recovery, the
worst count of failbacks into failure (per agent per incident), and paid minutes
(``watcher.simulate.sweep``).

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
    SCHEMA,
    CheckResult,
    PolicyFileError,
    Scenario,
    ScenarioError,
    bundled_names,
    find_scenario,
    format_text,
    read_policy_file,
    simulate,
)
from watcher.simulate.sweep import format_sweep, parse_seeds, sweep


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
    p.add_argument(
        "scenario",
        nargs="*",
        help="a scenario .toml file, or the name of a bundled one (with --seeds: any "
        "number, default every bundled one)",
    )
    p.add_argument(
        "--policy",
        default="default",
        metavar="FILE|naive|original",
        help="'default' (the shipped policy), 'naive' (the watcher of 14-20 May: failback "
        "after two probes, nothing else), 'original' (before 14 May: no failback at "
        "all), or a TOML file of Policy fields that override the default",
    )
    p.add_argument(
        "--seeds",
        metavar="RANGE",
        help="sweep: run each scenario once per seed (for example 1-20) under the "
        "original, naive and default policies and print one table",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON (schema 1)")
    p.set_defaults(func=run)


def _scenarios(names: list[str]) -> list[Scenario] | None:
    try:
        return [find_scenario(name) for name in names]
    except ScenarioError as exc:
        print(f"failover-watcher simulate: {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return None


def _sweep(args: argparse.Namespace) -> int:
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        print(f"failover-watcher simulate: {exc}", file=sys.stderr)
        return 2
    if args.policy != "default":
        print("failover-watcher simulate: --seeds runs the original, naive and default "
              "policies side by side; drop --policy", file=sys.stderr)
        return 2
    scenarios = _scenarios(args.scenario or bundled_names())
    if scenarios is None:
        return 2
    rows = sweep(scenarios, seeds=seeds)
    if args.json:
        json.dump({"schema": SCHEMA, "seeds": seeds, "rows": [r.as_json() for r in rows]},
                  sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_sweep(rows) + "\n")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.seeds is not None:
        return _sweep(args)
    if len(args.scenario) != 1:
        print("failover-watcher simulate: name one scenario (or sweep several with "
              "--seeds 1-20)", file=sys.stderr)
        return 2
    scenarios = _scenarios(args.scenario)
    if scenarios is None:
        return 2
    scenario = scenarios[0]
    fields: dict[str, Any] | None = None
    name = args.policy
    if name not in ("default", "naive", "original"):
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
