"""A simulator scenario: who runs on what, how much traffic, and what each model answers.

A scenario is a TOML file (format in ``scenarios/README.md``). It is read once into a
frozen ``Scenario``; every problem in the file is reported at once in a
``ScenarioError`` (declarative config, all errors listed), so a scenario author fixes
the file in one pass.

The timeline separates what *real traffic* gets from what *probes* get, because the
20 May flap was exactly that split: traffic 429 while a one-token probe got 200. The
timeline is also the simulator's ground truth: "the primary truly recovered" means
its traffic answer is ``ok`` again.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watcher.gateway.chains import GatewayConfigError, load_gateway_config
from watcher.simulate.model import (
    _ANSWER_ALIASES,
    ANSWER_KINDS,
    POLICY_NAMES,
    Answer,
    GatewayBehaviour,
    Scenario,
    ScenarioError,
    TimelineEntry,
    TrafficWindow,
    Window,
)

# -- reading ---------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?"
                       r"\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_duration(value: Any) -> float:
    """``90``, ``"90"``, ``"90s"``, ``"15m"``, ``"1h30m"`` -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"{value!r} is negative")
        return float(value)
    if isinstance(value, str):
        if re.fullmatch(r"\s*\d+(?:\.\d+)?\s*", value):
            return float(value)  # a bare number is seconds
        m = _DURATION.match(value)
        if m and any(m.groups()):
            h, mi, s = (float(g) if g else 0.0 for g in m.groups())
            return h * 3600 + mi * 60 + s
    raise ValueError(f"{value!r} is not a duration (like 90s, 15m, 1h30m)")


def parse_instant(text: str, start: float, end: float | None = None) -> float:
    """A point in scenario time: ``HH:MM[:SS]`` (UTC, the first such time at or after
    the start), ``+15m`` (offset from the start), ``start``, ``end`` or a full ISO
    timestamp."""
    text = text.strip()
    if text == "start":
        return start
    if text == "end":
        if end is None:
            raise ValueError("'end' is not known here")
        return end
    if text.startswith("+"):
        return start + parse_duration(text[1:])
    m = _CLOCK.match(text)
    if m:
        hh, mm, ss = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        if hh > 23 or mm > 59 or ss > 59:
            raise ValueError(f"{text!r} is not a time of day")
        base = datetime.fromtimestamp(start, UTC)
        at = base.replace(hour=hh, minute=mm, second=ss, microsecond=0)
        if at.timestamp() < start:
            at += timedelta(days=1)
        return at.timestamp()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time (HH:MM, +15m, start, end, or ISO 8601)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def parse_answer(text: Any, retry_after: float | None = None) -> Answer:
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise ValueError(f"{text!r} is not an answer")
    kind = _ANSWER_ALIASES.get(text.strip(), text.strip())
    if kind not in ANSWER_KINDS:
        raise ValueError(f"unknown answer {text!r} (one of: {', '.join(ANSWER_KINDS)})")
    if retry_after is not None and kind not in ("429", "slot_full", "503"):
        raise ValueError(f"retry_after only goes with 429, slot_full or 503, not {kind!r}")
    return Answer(kind, retry_after)  # type: ignore[arg-type]


def _spec_tokens(spec: str) -> dict[str, str]:
    """``from 14:00 to 14:40 traffic=429 probe=ok`` -> {from, to, traffic, probe}."""
    tokens = spec.split()
    out: dict[str, str] = {}
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("from", "to"):
            if i + 1 >= len(tokens):
                raise ValueError(f"{tok!r} needs a time after it")
            key, value = tok, tokens[i + 1]
            i += 2
        else:
            key, eq, value = tok.partition("=")
            if not eq or not value:
                raise ValueError(f"cannot read {tok!r} (expected from X, to Y or key=value)")
            i += 1
        if key in out:
            raise ValueError(f"{key!r} given twice")
        out[key] = value
    return out


def parse_window(spec: str, start: float, end: float) -> Window:
    fields = _spec_tokens(spec)
    unknown = set(fields) - {"from", "to", "traffic", "probe", "retry_after"}
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(sorted(unknown))}")
    w_start = parse_instant(fields.get("from", "start"), start, end)
    w_end = parse_instant(fields.get("to", "end"), start, end)
    if w_end <= w_start:
        raise ValueError("'to' must come after 'from'")
    retry_after = parse_duration(fields["retry_after"]) if "retry_after" in fields else None
    if "traffic" not in fields and "probe" not in fields:
        raise ValueError("give traffic=..., probe=..., or both")
    # One side alone applies to both: an outage hits probes and traffic alike.
    traffic_text = fields.get("traffic", fields.get("probe"))
    probe_text = fields.get("probe", fields.get("traffic"))
    traffic = parse_answer(traffic_text, retry_after if traffic_text != "ok" else None)
    probe = parse_answer(probe_text, retry_after if probe_text != "ok" else None)
    if traffic.kind == "wrong_model":
        raise ValueError("wrong_model is a probe answer (the gateway does not check it)")
    return Window(w_start, w_end, traffic, probe)


def parse_traffic(value: Any, start: float, end: float) -> tuple[TrafficWindow, ...]:
    """``2`` (requests per minute, all along) or ``["4 from 14:00 to 15:00", ...]``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("requests per minute cannot be negative")
        return (TrafficWindow(start, end, float(value)),) if value > 0 else ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError("must be a number (requests per minute) or a list of strings")
    windows = []
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"{item!r} is not a string like \"4 from 14:00 to 15:00\"")
        head, _, rest = item.strip().partition(" ")
        try:
            rpm = float(head.removeprefix("rpm="))
        except ValueError:
            raise ValueError(f"{item!r} must start with the requests per minute") from None
        fields = _spec_tokens(rest) if rest.strip() else {}
        if set(fields) - {"from", "to"}:
            raise ValueError(f"{item!r}: only 'from' and 'to' may follow the rate")
        w_start = parse_instant(fields.get("from", "start"), start, end)
        w_end = parse_instant(fields.get("to", "end"), start, end)
        if w_end <= w_start or rpm < 0:
            raise ValueError(f"{item!r}: empty window or negative rate")
        windows.append(TrafficWindow(w_start, min(w_end, end), rpm))
    return tuple(windows)


_TOP_KEYS = {
    "name", "description", "start", "duration", "probe_interval", "tick_interval", "seed",
    "paid_providers", "gateway_config", "agents", "traffic", "timeline", "gateway", "expect",
}
_EXPECT_CHECK = re.compile(r"^\s*([A-Za-z0-9_.:/\-]+)\s*(<=|>=|==|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")


def parse_scenario(text: str, *, source: str = "scenario", base_dir: Path | None = None,
                   default_name: str = "scenario") -> Scenario:
    """Read a scenario from TOML text; ``base_dir`` resolves ``gateway_config``."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([f"not valid TOML: {exc}"], source) from None
    problems: list[str] = []

    def want(cond: bool, msg: str) -> bool:
        if not cond:
            problems.append(msg)
        return cond

    for key in sorted(set(data) - _TOP_KEYS):
        problems.append(f"unknown top-level key {key!r}")

    name = data.get("name", default_name)
    want(isinstance(name, str) and bool(name), "name must be a non-empty string")
    description = data.get("description", "")
    want(isinstance(description, str), "description must be a string")

    start = 0.0
    raw_start = data.get("start")
    if want(isinstance(raw_start, str | datetime), "start must be an ISO 8601 time (UTC)"):
        if isinstance(raw_start, datetime):
            dt = raw_start if raw_start.tzinfo else raw_start.replace(tzinfo=UTC)
            start = dt.timestamp()
        else:
            try:
                start = parse_instant(str(raw_start), 0.0)
            except ValueError as exc:
                problems.append(f"start: {exc}")

    def duration(key: str, default: Any) -> float:
        try:
            value = parse_duration(data.get(key, default))
        except ValueError as exc:
            problems.append(f"{key}: {exc}")
            return 1.0
        if value <= 0:
            problems.append(f"{key} must be positive")
            return 1.0
        return value

    if "duration" not in data:
        problems.append("duration is required (like 2h or 90m)")
    length = duration("duration", "1s")
    end = start + length
    probe_interval = duration("probe_interval", "60s")
    tick_interval = duration("tick_interval", "15s")
    seed = data.get("seed", 0)
    want(isinstance(seed, int) and not isinstance(seed, bool), "seed must be an integer")

    paid = data.get("paid_providers", [])
    if want(isinstance(paid, list) and all(isinstance(p, str) for p in paid),
            "paid_providers must be a list of provider ids"):
        paid_set = frozenset(paid)
    else:
        paid_set = frozenset()

    chains: dict[str, tuple[str, ...]] = {}
    config_path = data.get("gateway_config")
    if config_path is not None and want(
        isinstance(config_path, str), "gateway_config must be a path string"
    ):
        path = Path(config_path)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            chains.update(load_gateway_config(path).chains)
        except GatewayConfigError as exc:
            problems.extend(f"gateway_config {config_path}: {p}" for p in exc.problems)
    agents = data.get("agents", {})
    if want(isinstance(agents, Mapping), "[agents] must be a table of agent = [chain]"):
        for agent, chain in agents.items():
            if not (isinstance(chain, list) and chain and all(
                    isinstance(m, str) and "/" in m.strip("/") for m in chain)):
                problems.append(f"agents.{agent} must be a non-empty list of provider/model refs")
                continue
            if len(set(chain)) != len(chain):
                problems.append(f"agents.{agent} lists a model twice")
                continue
            chains[str(agent)] = tuple(chain)
    want(bool(chains) or config_path is not None,
         "no agents: give [agents] or gateway_config")

    traffic: dict[str, tuple[TrafficWindow, ...]] = {}
    raw_traffic = data.get("traffic", {})
    if want(isinstance(raw_traffic, Mapping), "[traffic] must be a table of agent = rpm"):
        for agent, value in raw_traffic.items():
            if agent not in chains:
                problems.append(f"traffic.{agent}: no such agent")
                continue
            try:
                traffic[agent] = parse_traffic(value, start, end)
            except ValueError as exc:
                problems.append(f"traffic.{agent}: {exc}")

    known_models = {m for chain in chains.values() for m in chain}
    timeline: list[TimelineEntry] = []
    raw_timeline = data.get("timeline", {})
    if want(isinstance(raw_timeline, Mapping), "[timeline] must be a table of model = [...]"):
        for pattern, specs in raw_timeline.items():
            if isinstance(specs, str):
                specs = [specs]
            if not isinstance(specs, list):
                problems.append(f"timeline.{pattern!r} must be a list of strings")
                continue
            if pattern.endswith("/*"):
                if not any(m.startswith(pattern[:-1]) for m in known_models):
                    problems.append(f"timeline {pattern!r}: no model of that provider is used")
            elif pattern not in known_models:
                problems.append(f"timeline {pattern!r}: no agent's chain has that model")
            windows = []
            for spec in specs:
                try:
                    windows.append(parse_window(str(spec), start, end))
                except ValueError as exc:
                    problems.append(f"timeline {pattern!r} {spec!r}: {exc}")
            timeline.append(TimelineEntry(pattern, tuple(windows)))

    gateway = GatewayBehaviour()
    raw_gw = data.get("gateway", {})
    if want(isinstance(raw_gw, Mapping), "[gateway] must be a table"):
        fields: dict[str, Any] = {}
        for key, value in raw_gw.items():
            if key == "rate_limit_retries":
                if want(isinstance(value, int) and 0 <= value <= 20,
                        "gateway.rate_limit_retries must be an integer 0..20"):
                    fields[key] = value
            elif key == "plugin":
                if want(isinstance(value, bool), "gateway.plugin must be true or false"):
                    fields[key] = value
            elif key in ("retry_backoff", "timeout", "cooldown", "auth_dedup"):
                try:
                    fields[f"{key}_s"] = parse_duration(value)
                except ValueError as exc:
                    problems.append(f"gateway.{key}: {exc}")
            else:
                problems.append(f"gateway: unknown key {key!r}")
        gateway = GatewayBehaviour(**fields)

    expect: dict[str, tuple[str, ...]] = {}
    raw_expect = data.get("expect", {})
    if want(isinstance(raw_expect, Mapping), "[expect] must be a table of policy = [checks]"):
        for policy, checks in raw_expect.items():
            if policy not in POLICY_NAMES:
                problems.append(f"expect.{policy}: policy must be one of {POLICY_NAMES}")
                continue
            if not isinstance(checks, list) or not all(isinstance(c, str) for c in checks):
                problems.append(f"expect.{policy} must be a list of strings")
                continue
            for check in checks:
                if not _EXPECT_CHECK.match(check):
                    problems.append(
                        f"expect.{policy} {check!r}: write 'path op number', "
                        "e.g. 'totals.failbacks <= 1'"
                    )
            expect[policy] = tuple(checks)

    if problems:
        raise ScenarioError(problems, source)
    return Scenario(
        name=name,
        description=description.strip(),
        start=start,
        end=end,
        probe_interval_s=probe_interval,
        tick_interval_s=tick_interval,
        seed=seed,
        chains=chains,
        paid_providers=paid_set,
        traffic=traffic,
        timeline=tuple(timeline),
        gateway=gateway,
        expect=expect,
        source=source,
    )


def load_scenario(path: Path | str) -> Scenario:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"cannot read it: {exc.strerror or exc}"], str(path)) from None
    return parse_scenario(
        text, source=str(path), base_dir=path.parent, default_name=path.stem
    )


def split_check(check: str) -> tuple[str, str, float]:
    """``"totals.failbacks <= 1"`` -> ("totals.failbacks", "<=", 1.0)."""
    m = _EXPECT_CHECK.match(check)
    if m is None:
        raise ValueError(f"not a check: {check!r}")
    return m.group(1), m.group(2), float(m.group(3))
