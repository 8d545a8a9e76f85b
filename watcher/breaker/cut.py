"""Cutting a provider out of every agent's chain, and putting back exactly what was cut.

Pure: text in, text and a record out. No clock, no files.

Where a chain lives in ``openclaw.json`` (see ``watcher.gateway.chains`` for how it is read):

- ``agents.defaults.model``: its ``fallbacks`` are inherited by every agent whose
  model is a plain string (or an object without ``fallbacks``) and by agents with no
  model at all. Cutting the provider there cuts it for all of those at once, which is
  what the cap means; an agent with its own ``fallbacks`` list is cut in that list.
- ``agents.entries.<id>.model``: a string, or ``{primary, fallbacks}``; an older
  agent-level ``fallbacks`` list next to a string model is honoured the same way.
- the legacy ``agents.list[]`` (by ``id``), unless ``agents.entries`` shadows the id.

A cut removes the provider's refs from the effective fallbacks list of each place.
When a primary is on the provider, the first remaining fallback is promoted to
primary (taken out of the list it came from, or borrowed from the inherited defaults).
When nothing else remains, that agent keeps its chain as it is ("uncut"): a chain is
never left empty.

Each place touched becomes a ``SlotEdit`` holding the node's exact text before the
edit and its value after. The reset puts the old text back only where the value is
still what the cut wrote; anywhere the operator changed it meanwhile, the place is left
alone and reported. Because the old text is restored verbatim, a cut followed by a
reset gives back the original file byte for byte, comments included.

Every result is checked with the watcher's own chain reader before it is offered:
every agent keeps a non-empty chain, each chain is exactly the old one minus the
provider (or unchanged when it could not be cut), and nothing outside the edited
nodes differs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from watcher.breaker.document import (
    Document,
    DocumentError,
    Path,
    PlainDocument,
    open_document,
    path_text,
    value_at,
)
from watcher.gateway.chains import GatewayConfig, GatewayConfigError, parse_gateway_config

DEFAULTS = "defaults"  # the owner name of agents.defaults.model in records and cards


class CutError(ValueError):
    """The cut or the restore would produce an invalid config; nothing may be written."""


def on_provider(ref: Any, provider: str) -> bool:
    return isinstance(ref, str) and ref.partition("/")[0] == provider


def _path_json(path: Sequence[Any]) -> list[Any]:
    return [seg if isinstance(seg, str) else {"id": seg["id"]} for seg in path]


def _path_from_json(raw: Sequence[Any]) -> Path:
    return tuple(seg if isinstance(seg, str) else {"id": str(seg["id"])} for seg in raw)


@dataclass(frozen=True)
class SlotEdit:
    """One node of ``openclaw.json`` that a cut changed."""

    owner: str  # agent id, or ``defaults``
    path: Path
    before: Any  # the value before the cut
    after: Any  # the value the cut wrote
    before_text: str  # the node's exact text before the cut (comments included)

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "path": _path_json(self.path),
            "before": self.before,
            "after": self.after,
            "before_text": self.before_text,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SlotEdit:
        return cls(
            owner=str(data["owner"]),
            path=_path_from_json(data["path"]),
            before=data["before"],
            after=data["after"],
            before_text=str(data["before_text"]),
        )


@dataclass(frozen=True)
class Removal:
    """A ref taken out of a fallbacks list: who, where (list position before the cut), what."""

    owner: str
    path: Path  # the fallbacks list
    position: int
    ref: str

    def to_json(self) -> dict[str, Any]:
        return {"owner": self.owner, "path": _path_json(self.path), "position": self.position,
                "ref": self.ref}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Removal:
        return cls(str(data["owner"]), _path_from_json(data["path"]), int(data["position"]),
                   str(data["ref"]))


@dataclass(frozen=True)
class Promotion:
    """A primary on the cut provider replaced by the first remaining fallback."""

    owner: str
    from_ref: str
    to_ref: str
    position: int | None  # where it was taken from the owner's list; None: not taken out

    def to_json(self) -> dict[str, Any]:
        return {"owner": self.owner, "from": self.from_ref, "to": self.to_ref,
                "position": self.position}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Promotion:
        pos = data.get("position")
        return cls(str(data["owner"]), str(data["from"]), str(data["to"]),
                   None if pos is None else int(pos))


@dataclass(frozen=True)
class Cut:
    """What cutting one provider did to the config: enough to undo it exactly."""

    provider: str
    edits: tuple[SlotEdit, ...] = ()
    removals: tuple[Removal, ...] = ()
    promotions: tuple[Promotion, ...] = ()
    affected: tuple[str, ...] = ()  # agents whose chain changed
    uncut: tuple[str, ...] = ()  # agents left on the provider: nothing else in their chain

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "edits": [e.to_json() for e in self.edits],
            "removals": [r.to_json() for r in self.removals],
            "promotions": [p.to_json() for p in self.promotions],
            "affected": list(self.affected),
            "uncut": list(self.uncut),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Cut:
        return cls(
            provider=str(data["provider"]),
            edits=tuple(SlotEdit.from_json(e) for e in data.get("edits", ())),
            removals=tuple(Removal.from_json(r) for r in data.get("removals", ())),
            promotions=tuple(Promotion.from_json(p) for p in data.get("promotions", ())),
            affected=tuple(data.get("affected", ())),
            uncut=tuple(data.get("uncut", ())),
        )


@dataclass(frozen=True)
class Edited:
    """A new text for ``openclaw.json``, already validated."""

    text: str
    preserves_comments: bool
    changed: bool


@dataclass(frozen=True)
class Restore:
    """What a reset put back and what it left alone."""

    provider: str
    restored: tuple[str, ...] = ()  # owners whose nodes were put back
    already: tuple[str, ...] = ()  # owners the operator had already put back by hand
    left_alone: Mapping[str, str] = field(default_factory=dict)  # owner -> why


# --- reading the places chains live ---------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    owner: str
    model_path: Path
    agent_list_path: Path | None  # an agent-level ``fallbacks`` next to the model


def _slots(data: Any) -> tuple[_Slot | None, list[_Slot]]:
    agents = data.get("agents") if isinstance(data, Mapping) else None
    if not isinstance(agents, Mapping):
        return None, []
    defaults = agents.get("defaults")
    dslot = None
    if isinstance(defaults, Mapping) and "model" in defaults:
        dslot = _Slot(DEFAULTS, ("agents", "defaults", "model"), None)
    slots: list[_Slot] = []
    entries = agents.get("entries")
    entry_ids = set(entries) if isinstance(entries, Mapping) else set()
    legacy = agents.get("list")
    if isinstance(legacy, list):
        seen: set[str] = set()
        for item in legacy:
            if not isinstance(item, Mapping) or not isinstance(item.get("id"), str):
                continue
            aid = item["id"]
            if aid in entry_ids or aid in seen or "model" not in item:
                continue
            seen.add(aid)
            base: Path = ("agents", "list", {"id": aid})
            slots.append(_Slot(aid, (*base, "model"),
                               (*base, "fallbacks") if "fallbacks" in item else None))
    if isinstance(entries, Mapping):
        for aid, entry in entries.items():
            if not isinstance(entry, Mapping) or "model" not in entry:
                continue
            base = ("agents", "entries", str(aid))
            slots.append(_Slot(str(aid), (*base, "model"),
                               (*base, "fallbacks") if "fallbacks" in entry else None))
    return dslot, slots


def _config(text: str, what: str) -> GatewayConfig:
    try:
        return parse_gateway_config(text)
    except GatewayConfigError as exc:
        raise CutError(f"{what}: {exc}") from exc


# --- the cut --------------------------------------------------------------------------


class _Cutter:
    def __init__(self, doc: Document, provider: str) -> None:
        self.doc = doc
        self.provider = provider
        self.edits: list[SlotEdit] = []
        self.removals: list[Removal] = []
        self.promotions: list[Promotion] = []

    def cut_slot(
        self, slot: _Slot, inherited: list[str], *, shared: bool = False
    ) -> list[str] | None:
        """Cut one place; returns its effective fallbacks afterwards (None: inherited).

        ``shared`` is the defaults: other agents inherit its fallbacks list, so a
        fallback promoted to the defaults' primary also stays in that list (the
        defaults' own chain drops the duplicate; the inheritors keep it).
        """
        doc, provider = self.doc, self.provider
        spec = doc.value(slot.model_path)
        if isinstance(spec, str):
            primary, primary_path, list_path = spec, slot.model_path, slot.agent_list_path
        elif isinstance(spec, Mapping) and isinstance(spec.get("primary"), str):
            primary, primary_path = spec["primary"], (*slot.model_path, "primary")
            list_path = (*slot.model_path, "fallbacks") if isinstance(
                spec.get("fallbacks"), list) else slot.agent_list_path
        else:
            return None  # the chain reader rejects it; validation reports it
        own = doc.value(list_path) if list_path is not None else None
        if not isinstance(own, list):
            own, list_path = None, None

        drop = [i for i, ref in enumerate(own or []) if on_provider(ref, provider)]
        remaining = [(i, ref) for i, ref in enumerate(own or []) if i not in drop]
        promote: Promotion | None = None
        if on_provider(primary, provider):
            if own is not None and remaining:
                pos, to = remaining[0] if shared else remaining.pop(0)
                promote = Promotion(slot.owner, primary, to, None if shared else pos)
            elif own is None and inherited:
                promote = Promotion(slot.owner, primary, inherited[0], None)
        if not drop and promote is None:
            return None if own is None else [ref for _, ref in remaining]

        touched = [slot.model_path]
        if list_path is not None and list_path[: len(slot.model_path)] != slot.model_path:
            touched.append(list_path)
        snapshots = [(p, doc.value(p), doc.node_text(p)) for p in touched]
        if list_path is not None and (drop or (promote and promote.position is not None)):
            gone = [*drop, *([promote.position] if promote and promote.position is not None
                             else [])]
            doc.remove_items(list_path, gone)
            self.removals.extend(
                Removal(slot.owner, list_path, i, own[i]) for i in drop if own is not None
            )
        if promote is not None:
            doc.set_string(primary_path, promote.to_ref)
            self.promotions.append(promote)
        for p, before, text in snapshots:
            self.edits.append(SlotEdit(slot.owner, p, before, doc.value(p), text))
        return None if own is None else [ref for _, ref in remaining]


def _expect_cut(before: tuple[str, ...], provider: str) -> tuple[str, ...]:
    return tuple(ref for ref in before if not on_provider(ref, provider))


def _is_subsequence(small: Sequence[str], big: Sequence[str]) -> bool:
    it = iter(big)
    return all(ref in it for ref in small)


def _masked(data: Any, paths: Iterable[Path]) -> Any:
    """``data`` with every edited node replaced by a marker: what must not change."""
    out = copy.deepcopy(data)
    for path in paths:
        parent = value_at(out, path[:-1])
        last = path[-1]
        if isinstance(last, str) and isinstance(parent, dict) and last in parent:
            parent[last] = "<edited by the breaker>"
    return out


def _check_untouched(doc_before: Any, doc_after: Any, paths: Sequence[Path]) -> None:
    if _masked(doc_before, paths) != _masked(doc_after, paths):
        raise CutError("the edit changed something outside the chains it was meant to edit")


def cut_provider(text: str, provider: str) -> tuple[Edited, Cut]:
    """Remove ``provider`` from every agent's chain in ``text``; validated, not written."""
    old = _config(text, "openclaw.json is not valid now, so it is not edited")
    try:
        doc = open_document(text)
    except DocumentError as exc:
        raise CutError(str(exc)) from exc
    original = doc.value(())
    cutter = _Cutter(doc, provider)
    dslot, slots = _slots(original)
    inherited: list[str] = []
    if dslot is not None:
        after = cutter.cut_slot(dslot, [], shared=True)
        if after is not None:
            inherited = after
        else:
            dspec = doc.value(dslot.model_path)
            if isinstance(dspec, Mapping) and isinstance(dspec.get("fallbacks"), list):
                inherited = [r for r in dspec["fallbacks"] if isinstance(r, str)]
    for slot in slots:
        cutter.cut_slot(slot, inherited)

    new_text = doc.render()
    new = _config(new_text, "the cut would leave an invalid config")
    if set(new.chains) != set(old.chains):
        raise CutError("the cut changed which agents exist")
    affected, uncut = [], []
    for agent, chain in sorted(old.chains.items()):
        want = _expect_cut(chain, provider)
        got = new.chains[agent]
        if want and got != want:
            raise CutError(f"agent {agent!r}: the cut gave {list(got)}, expected {list(want)}")
        if not want:
            if not got or not _is_subsequence(got, chain):
                raise CutError(f"agent {agent!r}: the cut left {list(got)} from {list(chain)}")
            uncut.append(agent)
        if got != chain:
            affected.append(agent)
    _check_untouched(original, doc.value(()), [e.path for e in cutter.edits])
    cut = Cut(
        provider=provider,
        edits=tuple(cutter.edits),
        removals=tuple(cutter.removals),
        promotions=tuple(cutter.promotions),
        affected=tuple(affected),
        uncut=tuple(uncut),
    )
    edited = Edited(new_text, doc.preserves_comments, changed=new_text != text)
    return edited, cut


# --- the reset ------------------------------------------------------------------------


def restore_cuts(text: str, cuts: Sequence[Cut]) -> tuple[Edited, list[Restore]]:
    """Undo ``cuts`` (given in the order they were made) where the operator has not
    changed the nodes since; validated, not written."""
    try:
        doc = open_document(text)
    except DocumentError as exc:
        raise CutError(f"openclaw.json is not readable now, so it is not edited: {exc}") from exc
    original = doc.value(())
    results: list[Restore] = []
    restored_paths: list[Path] = []
    for cut in reversed(cuts):  # the last cut first: each one's "before" is the previous "after"
        owners: dict[str, list[SlotEdit]] = {}
        for edit in cut.edits:
            owners.setdefault(edit.owner, []).append(edit)
        restored, already, left = [], [], {}
        for owner, edits in owners.items():
            now = [doc.value(e.path) for e in edits]
            if all(cur == e.after for cur, e in zip(now, edits, strict=True)):
                for e in edits:
                    doc.replace(e.path, e.before_text)
                    restored_paths.append(e.path)
                restored.append(owner)
            elif all(cur == e.before for cur, e in zip(now, edits, strict=True)):
                already.append(owner)
            else:
                changed = [path_text(e.path) for cur, e in zip(now, edits, strict=True)
                           if cur != e.after]
                left[owner] = f"changed since the cut: {', '.join(changed)}"
        results.append(Restore(cut.provider, tuple(restored), tuple(already), left))
    results.reverse()
    new_text = doc.render()
    if restored_paths:
        _config(new_text, "the reset would leave an invalid config")
        _check_untouched(original, doc.value(()), restored_paths)
    return Edited(new_text, doc.preserves_comments, new_text != text), results


__all__ = [
    "DEFAULTS",
    "Cut",
    "CutError",
    "Edited",
    "PlainDocument",
    "Promotion",
    "Removal",
    "Restore",
    "SlotEdit",
    "cut_provider",
    "on_provider",
    "restore_cuts",
]
