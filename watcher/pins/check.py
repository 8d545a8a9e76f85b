"""Validate a pin file and say what is wrong with it in plain words.

Shared by the pin store (to quarantine a bad hand edit with a readable reason) and by
``scripts/pin-edit``, which runs ``python -m watcher.pins.check FILE`` on the jq result
before it replaces the live pin file. Exit codes: 0 valid, 1 invalid, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from watcher.pins import schema as pinfile
from watcher.pins.schema import PinFile

# Extra check against the gateway's live chains; raises ValueError with a plain message.
PinValidator = Callable[[PinFile], None]


class PinFileInvalid(ValueError):
    """The text is not a valid pin file; ``str(exc)`` is meant for the operator."""


def describe(exc: Exception) -> str:
    """One readable line per problem, e.g. ``agents.a.current_serving: ... not in chain``."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return f"not valid UTF-8 text at byte {exc.start}"
    if isinstance(exc, ValidationError):
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{where}: {msg}")
        return "; ".join(lines)
    return str(exc)


def check_text(text: str | bytes, validator: PinValidator | None = None) -> PinFile:
    """Parse and validate; raise :class:`PinFileInvalid` with a plain-words reason."""
    try:
        pins = pinfile.loads(text)
        if validator is not None:
            validator(pins)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PinFileInvalid(describe(exc)) from exc
    return pins


def chains_validator(chains: Mapping[str, Sequence[str]]) -> PinValidator:
    """A validator that refuses pins naming a model outside the agent's live chain.

    Agents absent from ``chains`` are left alone (the watcher drops or re-adds them
    from the gateway config; that is not a human error).
    """

    def validate(pins: PinFile) -> None:
        problems = []
        for agent_id, pin in sorted(pins.agents.items()):
            chain = chains.get(agent_id)
            if chain is None:
                continue
            if pin.current_serving not in chain:
                problems.append(
                    f"agents.{agent_id}.current_serving: {pin.current_serving!r} is not in "
                    f"the agent's chain {list(chain)}"
                )
            if pin.hold is not None and pin.hold.model not in chain:
                problems.append(
                    f"agents.{agent_id}.hold.model: {pin.hold.model!r} is not in the "
                    f"agent's chain {list(chain)}"
                )
        if problems:
            raise ValueError("; ".join(problems))

    return validate


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m watcher.pins.check",
        description="Check that FILE is a valid failover-watcher pin file.",
    )
    parser.add_argument("file", help="pin file to check ('-' for stdin)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing when valid")
    args = parser.parse_args(argv)
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        pins = check_text(data)
    except PinFileInvalid as exc:
        print(f"invalid pin file {args.file}: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"valid pin file {args.file}: {len(pins.agents)} agents, {len(pins.models)} models")
    return 0


if __name__ == "__main__":
    sys.exit(main())
