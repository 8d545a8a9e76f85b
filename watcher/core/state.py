"""The core's state: model health plus per-agent pins, immutable and JSON-able.

Health is per *model*: a failing model affects every agent whose chain contains it.
Flapping is per *agent*: it is the agent's pin that oscillates (two agents sharing a
primary can have different chains and so different histories), so the freeze, the
score and the FLAPPING_* cards belong to the agent. In the pin file a model shows as
``flapping`` when some flapping agent is frozen away from it.

Everything here is a frozen dataclass; ``decide`` replaces what changed and shares
the rest, so an event costs a couple of small dict copies, not a rebuild.

``to_json``/``from_json`` round-trip the whole state through plain dicts so the
daemon can persist it and resume exactly. The view the gateway reads is
``watcher.pins.view.to_pinfile``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from immutables import Map

from watcher.classify.table import FailureClass
from watcher.core._fast import evolve
from watcher.pins.schema import HealthState

K = TypeVar("K")
V = TypeVar("V")

STATE_SCHEMA = 1

Chains = Mapping[str, tuple[str, ...]]

@dataclass(frozen=True, slots=True)
class HoldState:
    """An operator hold: keep the agent on ``model`` until released or ``until``."""

    model: str
    by: str
    until: float | None = None
    note: str | None = None

    def active(self, now: float) -> bool:
        return self.until is None or now < self.until


@dataclass(frozen=True, slots=True)
class ModelHealth:
    """What the evidence says about one model.

    ``failing`` is the one bit pins are computed from ("held down"). A model inside
    its cooldown is always failing; it stops failing only through the failback rule
    (probes), a real-traffic success outside its cooldown, or an operator.
    """

    failing: bool = False
    failure_class: FailureClass | None = None
    reason: str | None = None
    since: float | None = None
    cooldown_until: float | None = None
    cooldown_level: int = 0
    last_throttle_at: float | None = None
    probe_streak: int = 0
    streak_started_at: float | None = None
    last_traffic_failure: float | None = None
    last_traffic_ok: bool | None = None  # last real-traffic outcome, for paid edges
    fail_count: int = 0  # real-traffic failures (occurrences) since the last success
    last_probe_requested_at: float | None = None
    last_event_at: float | None = None  # latest evidence about it (agents' last_event_ts)
    # Half-open (``watcher.core.trial``): one agent's next real turn goes to this model
    # first, and only its success brings the model up.
    trial_agent: str | None = None  # the canary of the open trial
    trial_at: float | None = None  # when the trial opened
    trial_until: float | None = None  # when it ends unanswered (the plugin's deadline)
    trial_failures: int = 0  # trials in a row whose turn failed
    trial_not_before: float | None = None  # no new trial before this

    @property
    def trial_open(self) -> bool:
        return self.trial_agent is not None

    def recovered(self) -> ModelHealth:
        """Up again: the failure facts, the probe streak and any trial are cleared. The
        cooldown and its level are kept; only an operator clears a running cooldown."""
        return evolve(
            self,
            failing=False,
            failure_class=None,
            reason=None,
            since=None,
            probe_streak=0,
            streak_started_at=None,
            fail_count=0,
            trial_agent=None,
            trial_at=None,
            trial_until=None,
            trial_failures=0,
            trial_not_before=None,
        )

    def in_cooldown(self, now: float) -> bool:
        return self.cooldown_until is not None and now < self.cooldown_until

    def health(self, now: float) -> HealthState:
        if not self.failing:
            return "healthy"
        return "throttled" if self.in_cooldown(now) else "failing"


HEALTHY = ModelHealth()


@dataclass(frozen=True, slots=True)
class AgentState:
    """One agent's pin and the history the policy needs about it."""

    chain: tuple[str, ...]
    serving: str
    fallback_since: float | None = None
    hold: HoldState | None = None
    last_event_ts: float | None = None  # its own last change; the pin file also counts
    # the latest evidence about any model in its chain (ModelHealth.last_event_at)
    failure_class: str | None = None  # why it is off its primary (None on the primary)
    reason: str | None = None
    transitions: tuple[float, ...] = ()  # recent automatic pin changes, oldest first
    flapping: bool = False
    flap_score: float = 0.0
    exhausted: bool = False  # every chain entry down, or the gateway said next=none
    last_lane: str | None = None  # the last lane line naming this agent
    last_lane_ts: float | None = None
    last_failback_to: str | None = None  # the last automatic failback, to spot a bounce
    last_failback_at: float | None = None

    @property
    def primary(self) -> str:
        return self.chain[0]

    @property
    def in_fallback(self) -> bool:
        return self.serving != self.chain[0]


@dataclass(frozen=True, slots=True)
class PluginView:
    """What the gateway plugin last said: does the pin steer the gateway now?

    While it steers, a decision line about a run's primary attempt may name the
    configured primary for a call that went to the pinned model; the plugin's run
    outcome line reports that attempt instead."""

    steering: bool = False
    kind: str = "unknown"
    why: str = "no word from the gateway plugin yet"
    since: float | None = None


NO_PLUGIN = PluginView()


@dataclass(frozen=True, slots=True)
class DrillView:
    """The last drill: when, and per agent (working depth, members, cross-provider ok)."""

    at: float
    agents: Mapping[str, tuple[int, int, bool]]

    def sound(self, agent: str) -> bool:
        entry = self.agents.get(agent)
        return entry is not None and entry[0] >= 2 and entry[2]


def persistent(mapping: Mapping[K, V]) -> Map[K, V]:
    """``mapping`` as a persistent map (itself when it already is one)."""
    return mapping if type(mapping) is Map else Map(mapping)


@dataclass(frozen=True, slots=True)
class State:
    """The whole decision state. ``agents`` and ``models`` are persistent maps
    (``immutables.Map``, whatever mapping was passed in): each decision makes a new
    state from the last by a few O(log n) sets, never a copy of the fleet."""

    chains: Chains
    agents: Mapping[str, AgentState]
    models: Mapping[str, ModelHealth]
    # Derived from chains (never serialised): model -> agents whose chain holds it.
    agents_by_model: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    plugin: PluginView = NO_PLUGIN
    # The chain check's findings last announced (``watcher.core.drift``), sorted.
    lint: tuple[str, ...] = ()
    drill: DrillView | None = None  # the last scheduled drill (``watcher.core.drills``)

    def __post_init__(self) -> None:
        if type(self.agents) is not Map:
            object.__setattr__(self, "agents", Map(self.agents))
        if type(self.models) is not Map:
            object.__setattr__(self, "models", Map(self.models))


def index_agents(chains: Chains) -> dict[str, tuple[str, ...]]:
    by_model: dict[str, list[str]] = {}
    for agent in sorted(chains):
        for model in chains[agent]:
            by_model.setdefault(model, []).append(agent)
    return {model: tuple(agents) for model, agents in by_model.items()}


def check_invariants(state: State, now: float) -> list[str]:
    """What is wrong with ``state``, one sentence per broken invariant (empty: sound).

    The rules every decision must keep: the agents are the chains' agents, each on a
    member of its own chain (a hold too), off the primary only with a fallback time
    cleared on it, every chain member has a health record and the model index matches
    the chains, and a model in cooldown is down. ``decide`` keeps them; the stateful
    test checks them after every step, and the daemon checks a snapshot it loads."""
    problems: list[str] = []
    if set(state.agents) != set(state.chains):
        problems.append(
            f"agents {sorted(state.agents)} are not the chains' agents {sorted(state.chains)}"
        )
    for agent_id, agent in sorted(state.agents.items()):
        chain = state.chains.get(agent_id)
        if chain is not None and tuple(agent.chain) != tuple(chain):
            problems.append(f"{agent_id}'s chain {list(agent.chain)} is not {list(chain)}")
        if agent.serving not in agent.chain:
            problems.append(f"{agent_id} serves {agent.serving}, outside its chain")
        if agent.hold is not None and agent.hold.model not in agent.chain:
            problems.append(f"{agent_id} is held on {agent.hold.model}, outside its chain")
        if not agent.in_fallback and agent.fallback_since is not None:
            problems.append(f"{agent_id} is on its primary but has a fallback_since")
    members = {ref for chain in state.chains.values() for ref in chain}
    if missing := sorted(members - set(state.models)):
        problems.append(f"no health record for {missing}")
    if dict(state.agents_by_model) != index_agents(state.chains):
        problems.append("the model -> agents index does not match the chains")
    for ref, health in sorted(state.models.items()):
        if health.in_cooldown(now) and not health.failing:
            problems.append(f"{ref} is in a cooldown but not down")
    return problems


def normalise_chains(chains: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    """Chains as tuples, duplicates removed, empty chains refused."""
    out: dict[str, tuple[str, ...]] = {}
    for agent, chain in chains.items():
        refs = tuple(dict.fromkeys(chain))
        if not refs:
            raise ValueError(f"agent {agent!r} has an empty chain")
        out[str(agent)] = refs
    return out


def initial_state(chains: Mapping[str, Iterable[str]]) -> State:
    """Every agent on its primary, every model healthy."""
    norm = normalise_chains(chains)
    by_model = index_agents(norm)
    return State(
        chains=norm,
        agents={agent: AgentState(chain=chain, serving=chain[0]) for agent, chain in norm.items()},
        models=dict.fromkeys(by_model, HEALTHY),
        agents_by_model=by_model,
    )


# --- whole-state JSON ---------------------------------------------------------------

_MODEL_FIELDS = (
    "failing",
    "reason",
    "since",
    "cooldown_until",
    "cooldown_level",
    "last_throttle_at",
    "probe_streak",
    "streak_started_at",
    "last_traffic_failure",
    "last_traffic_ok",
    "fail_count",
    "last_probe_requested_at",
    "last_event_at",
)
# Added after the state schema was fixed: a snapshot written before them lacks them.
_MODEL_FIELDS_SINCE_TRIALS = (
    "trial_agent", "trial_at", "trial_until", "trial_failures", "trial_not_before",
)
_AGENT_FIELDS = (
    "serving",
    "fallback_since",
    "last_event_ts",
    "failure_class",
    "reason",
    "flapping",
    "flap_score",
    "exhausted",
    "last_lane",
    "last_lane_ts",
    "last_failback_to",
    "last_failback_at",
)


def to_json(state: State) -> dict[str, Any]:
    """The whole state as plain dicts and lists (JSON-ready), for exact resumption."""
    models: dict[str, Any] = {}
    for ref, health in sorted(state.models.items()):
        data = {name: getattr(health, name) for name in _MODEL_FIELDS}
        for name in _MODEL_FIELDS_SINCE_TRIALS:
            data[name] = getattr(health, name)
        data["failure_class"] = health.failure_class.value if health.failure_class else None
        models[ref] = data
    agents: dict[str, Any] = {}
    for agent_id, agent in sorted(state.agents.items()):
        data = {name: getattr(agent, name) for name in _AGENT_FIELDS}
        data["chain"] = list(agent.chain)
        data["transitions"] = list(agent.transitions)
        data["hold"] = (
            None
            if agent.hold is None
            else {
                "model": agent.hold.model,
                "by": agent.hold.by,
                "until": agent.hold.until,
                "note": agent.hold.note,
            }
        )
        agents[agent_id] = data
    return {
        "schema": STATE_SCHEMA,
        "chains": {agent: list(chain) for agent, chain in sorted(state.chains.items())},
        "agents": agents,
        "models": models,
        "lint": list(state.lint),
        "drill": None if state.drill is None else {
            "at": state.drill.at,
            "agents": {a: list(v) for a, v in sorted(state.drill.agents.items())},
        },
        "plugin": {
            "steering": state.plugin.steering,
            "kind": state.plugin.kind,
            "why": state.plugin.why,
            "since": state.plugin.since,
        },
    }


def from_json(data: Mapping[str, Any]) -> State:
    """Inverse of :func:`to_json`; raises ``ValueError`` naming what is wrong."""
    if data.get("schema") != STATE_SCHEMA:
        raise ValueError(f"state schema {data.get('schema')!r} is not {STATE_SCHEMA}")
    try:
        chains = normalise_chains(data["chains"])
        models: dict[str, ModelHealth] = {}
        for ref, raw in data["models"].items():
            fields = {name: raw[name] for name in _MODEL_FIELDS}
            fields.update({n: raw[n] for n in _MODEL_FIELDS_SINCE_TRIALS if n in raw})
            fc = raw.get("failure_class")
            models[ref] = ModelHealth(
                failure_class=FailureClass(fc) if fc is not None else None, **fields
            )
        agents: dict[str, AgentState] = {}
        for agent_id, raw in data["agents"].items():
            fields = {name: raw[name] for name in _AGENT_FIELDS}
            hold = raw.get("hold")
            agents[agent_id] = AgentState(
                chain=tuple(raw["chain"]),
                transitions=tuple(float(t) for t in raw["transitions"]),
                hold=None if hold is None else HoldState(**hold),
                **fields,
            )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"state is missing or has a bad field: {exc}") from exc
    for agent_id, agent in agents.items():
        if chains.get(agent_id) != agent.chain or agent.serving not in agent.chain:
            raise ValueError(f"agent {agent_id!r} is inconsistent with its chain")
    by_model = index_agents(chains)
    for ref in by_model:
        models.setdefault(ref, HEALTHY)
    raw_plugin = data.get("plugin")  # absent in snapshots of older runs
    plugin = NO_PLUGIN
    if isinstance(raw_plugin, Mapping):
        since = raw_plugin.get("since")
        plugin = PluginView(
            steering=raw_plugin.get("steering") is True,
            kind=str(raw_plugin.get("kind", NO_PLUGIN.kind)),
            why=str(raw_plugin.get("why", NO_PLUGIN.why)),
            since=float(since) if isinstance(since, int | float) else None,
        )
    raw_lint = data.get("lint")  # absent in snapshots of older runs
    lint = tuple(str(x) for x in raw_lint) if isinstance(raw_lint, list) else ()
    raw_drill = data.get("drill")  # absent in snapshots of older runs
    drill = None
    if isinstance(raw_drill, Mapping):
        drill = DrillView(
            at=float(raw_drill["at"]),
            agents={
                str(a): (int(v[0]), int(v[1]), bool(v[2]))
                for a, v in dict(raw_drill.get("agents") or {}).items()
            },
        )
    return State(
        chains=chains, agents=agents, models=models, agents_by_model=by_model, plugin=plugin,
        lint=lint, drill=drill,
    )
