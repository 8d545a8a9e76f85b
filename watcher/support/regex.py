"""Cheap pre-checks for regex searches that run on every line of a journal.

A search is skipped only when it provably cannot match: the strings a pattern needs
are read off the regex compiler's own parse (``required_strings``), and a text holding
none of them is not searched. A case-blind search on an ASCII text may also run on its
lower case without IGNORECASE (``lowered``), which keeps the engine's literal-prefix
scan. Anything unusual (a text that is not ASCII, a pattern the reader does not follow)
falls back to the plain search.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

_MIN_NEED = 3  # shorter strings would pass nearly every text


def required_strings(pattern: str, flags: int = 0) -> tuple[str, ...] | None:
    """Strings at least one of which is in every text ``pattern`` matches, case as
    written; None when no such set of strings of ``_MIN_NEED`` characters or more is
    found. Read off the regex compiler's own parse: in a sequence, a run of literal
    characters must all be there; a group or a repeat of at least one, what its body
    needs; an alternation, what each branch needs (one of them). Anything else (a
    class, ``.``, an optional part, a look-around) needs nothing. Any surprise from the
    parser gives None: the pattern is then searched as it is, never skipped."""
    try:
        parser = importlib.import_module("re._parser")
        return _needs(parser.parse(pattern, flags), importlib.import_module("re._constants"))
    except Exception:  # a private module: on any surprise, the search alone
        return None


def needed_lower(pattern: re.Pattern[str]) -> tuple[str, ...] | None:
    """``required_strings`` of a case-blind pattern, lower-cased: on an ASCII text, the
    pattern can match only if one of them is in the text's lower case (see
    ``absent``). None when there are none, or one is not ASCII."""
    found = required_strings(pattern.pattern, pattern.flags & ~re.IGNORECASE)
    if found is None or not all(n.isascii() for n in found):
        return None
    return tuple(sorted({n.lower() for n in found}))


def absent(needs: tuple[str, ...] | None, text: str) -> bool:
    """True when a pattern with these ``needed_lower`` strings cannot match ``text``."""
    if needs is None:
        return False
    lower = lowered(text)
    return lower is not None and not holds_one(needs, lower)


def holds_one(needs: tuple[str, ...], text: str) -> bool:
    """One of ``needs`` is in ``text`` (a plain loop: twice as fast as ``any()`` over
    a generator, and this runs for every signature on every unique detail)."""
    for need in needs:  # noqa: SIM110 - the loop is the point
        if need in text:
            return True
    return False


def _needs(items: Any, ops: Any) -> tuple[str, ...] | None:
    best: tuple[str, ...] | None = None
    score = 0  # the shortest of ``best``
    run: list[str] = []
    candidates: list[tuple[str, ...] | None] = []
    for op, arg in [*items, (None, None)]:
        if op is ops.LITERAL:
            run.append(chr(arg))
            continue
        if run:
            candidates.append(("".join(run),))
            run = []
        if op is ops.BRANCH:
            branches = [_needs(branch, ops) for branch in arg[1]]
            joined = None if any(b is None for b in branches) else tuple(
                sorted({n for b in branches if b is not None for n in b}))
            candidates.append(joined)
        elif op is ops.SUBPATTERN:
            candidates.append(_needs(arg[3], ops))
        elif op in (ops.MAX_REPEAT, ops.MIN_REPEAT) and arg[0] >= 1:
            candidates.append(_needs(arg[2], ops))
    for found in candidates:
        if found and min(map(len, found)) > score:
            best, score = found, min(map(len, found))
    return best if score >= _MIN_NEED else None


def lowered(text: str) -> str | None:
    """``text`` lower-cased, for the case-sensitive twin of a case-blind pattern whose
    source has no capital (``watcher.classify.signatures.Signature.lower_pattern``), or
    None when it is not ASCII: Unicode case folding is not one character for one, so
    those keep the case-blind pattern."""
    return text.lower() if text.isascii() else None
