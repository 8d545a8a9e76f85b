"""Which policy a simulation runs: ``default``, ``naive``, ``original``, or a TOML file
of Policy fields.

The scenario supplies what only it knows: which providers are paid, and (unless the
policy file sets ``probe_interval_s``) the probe interval. Everything else is the
policy's.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from watcher.core.policy import Policy
from watcher.simulate.model import Scenario


class PolicyFileError(ValueError):
    """A ``--policy`` file that cannot be used; ``problems`` lists every reason."""

    def __init__(self, problems: list[str], source: str) -> None:
        self.problems = problems
        super().__init__(f"{source}: " + "; ".join(problems))


def read_policy_file(path: Path | str) -> dict[str, Any]:
    """The Policy fields in a TOML file (top level, or under ``[policy]``)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyFileError([f"cannot read it: {exc.strerror or exc}"], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError([f"not valid TOML: {exc}"], str(path)) from None
    if set(data) == {"policy"} and isinstance(data["policy"], dict):
        data = data["policy"]
    try:
        Policy(**data)  # validate alone first, so errors name the file's own fields
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'policy'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise PolicyFileError(problems, str(path)) from None
    return data


def policy_for(scenario: Scenario, name: str = "default",
               fields: dict[str, Any] | None = None) -> Policy:
    """``name`` is ``default``, ``naive`` or ``original``; ``fields`` (from a policy file) override
    the default policy's fields."""
    base: dict[str, Any] = {"probe_interval_s": scenario.probe_interval_s}
    if name == "naive":
        policy = Policy.naive(**base)
    elif name == "original":
        policy = Policy.original(**base)
    elif name == "default":
        policy = Policy(**{**base, **(fields or {})})
    else:
        raise ValueError(f"unknown policy {name!r} (default, naive, original, or a file)")
    paid = frozenset(policy.paid_providers) | scenario.paid_providers
    return policy.model_copy(update={"paid_providers": paid})
