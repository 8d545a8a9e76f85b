"""``openclaw.json`` as an editable document that keeps the operator's bytes.

The breaker edits a handful of nodes (a ``fallbacks`` array, a ``primary`` string) and
must leave everything else exactly as the operator wrote it: key order, indentation,
quoting, trailing commas and comments. json-five's round-trip model
(``json5.loads(text, loader=ModelLoader())`` / ``json5.dumps(model, dumper=ModelDumper())``)
is a concrete syntax tree: every node carries the whitespace and comments around it
(``wsc_before``/``wsc_after``, and ``leading_wsc`` after an opening bracket), and the
dumper writes string and number nodes from their ``raw_value``. An untouched model dumps
back to the identical text, so editing nodes in place changes only those nodes.

``ModelDocument`` refuses a text whose model does not dump back identically (a parser
bug would otherwise reformat the file); ``open_document`` then falls back to
``PlainDocument``, which rewrites the file as plain JSON and says so
(``preserves_comments`` is false, and the backup name carries ``comments-dropped``).

A path is a tuple of segments: an object key (``str``) or, for the legacy
``agents.list[]``, ``{"id": "<agent>"}`` selecting the element with that id.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import json5
from json5.dumper import ModelDumper
from json5.loader import ModelLoader
from json5.model import (
    Comment,
    DoubleQuotedString,
    Identifier,
    JSONArray,
    JSONObject,
    JSONText,
    Node,
    String,
    Value,
)

Segment = str | Mapping[str, str]
Path = tuple[Segment, ...]


class DocumentError(ValueError):
    """The text cannot be read as JSON5, or a path does not lead where it should."""


def path_text(path: Sequence[Segment]) -> str:
    """``agents.list[id=ops].model``: a path the operator can read in a card."""
    out = ""
    for seg in path:
        if isinstance(seg, str):
            out += f".{seg}" if out else seg
        else:
            out += f"[id={seg['id']}]"
    return out


def _select(container: Any, seg: Segment) -> Any:
    """One step into plain data; ``None`` when the step leads nowhere."""
    if isinstance(seg, str):
        return container.get(seg) if isinstance(container, Mapping) else None
    if isinstance(container, list):
        for item in container:
            if isinstance(item, Mapping) and item.get("id") == seg["id"]:
                return item
    return None


def value_at(data: Any, path: Sequence[Segment]) -> Any:
    node = data
    for seg in path:
        node = _select(node, seg)
        if node is None:
            return None
    return node


class Document(Protocol):
    preserves_comments: bool

    def value(self, path: Path) -> Any: ...
    def node_text(self, path: Path) -> str: ...
    def remove_items(self, path: Path, indices: Sequence[int]) -> None: ...
    def set_string(self, path: Path, text: str) -> None: ...
    def replace(self, path: Path, text: str) -> None: ...
    def render(self) -> str: ...


# --- the round-trip model ---------------------------------------------------------------


def _key_name(key: Node) -> str:
    if isinstance(key, Identifier):
        return key.name
    if isinstance(key, String):
        return key.characters
    raise DocumentError(f"unexpected key node {type(key).__name__}")


def _line_break_at(items: list[str | Comment]) -> int | None:
    """Index of the first whitespace chunk holding a line break, else ``None``."""
    for i, item in enumerate(items):
        if isinstance(item, str) and "\n" in item:
            return i
    return None


def _split_same_line(items: list[str | Comment]) -> tuple[list[str | Comment], list[str | Comment]]:
    """Split whitespace/comments into (the rest of the previous line, from the line break on).

    A comment on the same line as an array element, after its comma
    (``"openai/gpt-5.5", // paid``), is parsed into the *next* element's ``wsc_before``;
    it belongs to the element on its line, so it leaves with it.
    """
    k = _line_break_at(items)
    if k is None:
        return list(items), []
    chunk = items[k]
    assert isinstance(chunk, str)
    cut = chunk.index("\n")
    if cut > 0 and chunk[cut - 1] == "\r":
        cut -= 1
    head, tail = chunk[:cut], chunk[cut:]
    return [*items[:k], *([head] if head else [])], [tail, *items[k + 1 :]]


def _dump(node: Node) -> str:
    dumper = ModelDumper()
    dumper.dump(node)
    dumper.env.outfile.seek(0)
    text: str = dumper.env.outfile.read()
    return text


class ModelDocument:
    """Edits json-five's concrete syntax tree in place; untouched bytes stay as they were."""

    preserves_comments = True

    def __init__(self, text: str) -> None:
        try:
            self._model: JSONText = json5.loads(text, loader=ModelLoader())
            self._data = json5.loads(text)
        except Exception as exc:  # json5 raises several exception types
            raise DocumentError(f"not valid JSON5: {exc}") from exc
        if self.render() != text:
            raise DocumentError("json-five does not round-trip this text byte for byte")

    def value(self, path: Path) -> Any:
        return copy.deepcopy(value_at(self._data, path))

    def _locate(self, path: Path) -> tuple[JSONObject | JSONArray | JSONText, int, Value]:
        """(parent, index in parent's values, node) for ``path``."""
        if not path:
            raise DocumentError("empty path")
        parent: JSONObject | JSONArray | JSONText = self._model
        node: Value = self._model.value
        index = -1
        for seg in path:
            if isinstance(seg, str):
                if not isinstance(node, JSONObject):
                    raise DocumentError(f"{path_text(path)}: {seg!r} is not inside an object")
                names = [_key_name(k) for k in node.keys]
                if seg not in names:
                    raise DocumentError(f"{path_text(path)}: no key {seg!r}")
                index = len(names) - 1 - names[::-1].index(seg)  # the last one wins, as in JSON
                parent, node = node, node.values[index]
            else:
                if not isinstance(node, JSONArray):
                    raise DocumentError(f"{path_text(path)}: not a list")
                for i, item in enumerate(node.values):
                    if isinstance(item, JSONObject) and any(
                        _key_name(k) == "id" and isinstance(v, String) and v.characters == seg["id"]
                        for k, v in zip(item.keys, item.values, strict=True)
                    ):
                        parent, node, index = node, item, i
                        break
                else:
                    raise DocumentError(f"{path_text(path)}: no element with id {seg['id']!r}")
        return parent, index, node

    def node_text(self, path: Path) -> str:
        """The node's own text, without the whitespace and comments around it."""
        _, _, node = self._locate(path)
        before, after = node.wsc_before, node.wsc_after
        node.wsc_before, node.wsc_after = [], []
        try:
            return _dump(node)
        finally:
            node.wsc_before, node.wsc_after = before, after

    def _reload_data(self) -> None:
        self._data = json5.loads(self.render())

    def remove_items(self, path: Path, indices: Sequence[int]) -> None:
        _, _, array = self._locate(path)
        if not isinstance(array, JSONArray):
            raise DocumentError(f"{path_text(path)} is not a list")
        for i in sorted(set(indices), reverse=True):
            self._remove_one(array, i)
        self._reload_data()

    @staticmethod
    def _remove_one(array: JSONArray, i: int) -> None:
        """Remove item ``i`` with the comments on its line, keeping the list's layout.

        Commas are implicit in the model (the dumper writes them between items), so
        only whitespace and comments need care: each item's ``wsc_before`` is what sits
        between the previous comma and the item.
        """
        values = array.values
        if not 0 <= i < len(values):
            raise DocumentError(f"no list item {i}")
        gone = values[i]
        if len(values) == 1:
            array.values = []
            array.leading_wsc = []
            array.trailing_comma = None
            return
        if i < len(values) - 1:
            nxt = values[i + 1]
            _, tail = _split_same_line(nxt.wsc_before)
            if not tail:  # a one-line list: the next item takes the removed one's spacing
                nxt.wsc_before = gone.wsc_before
            elif i == 0 and _line_break_at(array.leading_wsc) is not None:
                # The bracket's own line break already precedes the new first item.
                first = tail[0]
                assert isinstance(first, str)
                first = first.lstrip("\r\n \t")
                nxt.wsc_before = [*([first] if first else []), *tail[1:]]
            else:
                nxt.wsc_before = tail
        elif array.trailing_comma is not None:
            _, tail = _split_same_line(array.trailing_comma.wsc_after)
            array.trailing_comma.wsc_after = tail
        else:
            prev = values[i - 1]
            _, tail = _split_same_line(gone.wsc_after)
            prev.wsc_after = tail if tail else gone.wsc_after
        del values[i]

    def set_string(self, path: Path, text: str) -> None:
        parent, index, old = self._locate(path)
        new = DoubleQuotedString(text, raw_value=json.dumps(text, ensure_ascii=False))
        new.wsc_before, new.wsc_after = old.wsc_before, old.wsc_after
        self._put(parent, index, new)
        self._reload_data()

    def replace(self, path: Path, text: str) -> None:
        """Put back a node's exact text (what ``node_text`` returned before an edit)."""
        parent, index, old = self._locate(path)
        try:
            new = json5.loads(text, loader=ModelLoader()).value
        except Exception as exc:
            raise DocumentError(f"{path_text(path)}: saved text is not JSON5: {exc}") from exc
        new.wsc_before, new.wsc_after = old.wsc_before, old.wsc_after
        self._put(parent, index, new)
        self._reload_data()

    @staticmethod
    def _put(parent: JSONObject | JSONArray | JSONText, index: int, node: Value) -> None:
        if isinstance(parent, JSONText):
            parent.value = node
        else:
            parent.values[index] = node

    def render(self) -> str:
        return _dump(self._model)


# --- the fallback: plain JSON -------------------------------------------------------------


class PlainDocument:
    """Plain data, written back as 2-space JSON. Used only when the model cannot round-trip.

    Comments and the operator's formatting are lost; the writer says so in the backup name.
    """

    preserves_comments = False

    def __init__(self, text: str) -> None:
        try:
            self._data = json5.loads(text)
        except Exception as exc:
            raise DocumentError(f"not valid JSON5: {exc}") from exc

    def value(self, path: Path) -> Any:
        return copy.deepcopy(value_at(self._data, path))

    def _parent(self, path: Path) -> tuple[Any, Segment]:
        parent = value_at(self._data, path[:-1])
        if parent is None or value_at(self._data, path) is None:
            raise DocumentError(f"{path_text(path)}: not found")
        return parent, path[-1]

    def node_text(self, path: Path) -> str:
        return json.dumps(self.value(path), ensure_ascii=False)

    def remove_items(self, path: Path, indices: Sequence[int]) -> None:
        items = value_at(self._data, path)
        if not isinstance(items, list):
            raise DocumentError(f"{path_text(path)} is not a list")
        drop = set(indices)
        items[:] = [v for i, v in enumerate(items) if i not in drop]

    def _set(self, path: Path, value: Any) -> None:
        parent, seg = self._parent(path)
        if isinstance(seg, str):
            parent[seg] = value
        else:  # a legacy list element itself is never replaced by the breaker
            raise DocumentError(f"{path_text(path)}: cannot replace a list element")

    def set_string(self, path: Path, text: str) -> None:
        self._set(path, text)

    def replace(self, path: Path, text: str) -> None:
        self._set(path, json5.loads(text))

    def render(self) -> str:
        return json.dumps(self._data, indent=2, ensure_ascii=False) + "\n"


def open_document(text: str) -> ModelDocument | PlainDocument:
    """The comment-preserving model when it round-trips, else plain JSON."""
    plain = PlainDocument(text)  # raises DocumentError when the text is not JSON5 at all
    try:
        return ModelDocument(text)
    except DocumentError:
        return plain
