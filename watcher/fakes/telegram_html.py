"""Telegram's HTML parse mode, checked the way Telegram checks it.

``parse_telegram_html`` accepts only Telegram's tags, balanced, with every ``<``,
``>`` and ``&`` outside a tag escaped, and returns the plain text a user would see; so
an unescaped card gets "can't parse entities" from the fake exactly as it would from
Telegram.
"""

from __future__ import annotations

import html
import re

HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "tg-emoji",
        "code",
        "pre",
        "blockquote",
    }
)
_TAG = re.compile(r'<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:="[^"<>]*")?)*)\s*>')
_ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")
MAX_TEXT = 4096


class HtmlError(ValueError):
    """What Telegram says about bad HTML: "Bad Request: can't parse entities: ..."."""


def parse_telegram_html(text: str) -> str:
    """Validate Telegram HTML and return the plain text a user would see."""
    out: list[str] = []
    stack: list[str] = []
    pos = 0
    while pos < len(text):
        ch = text[pos]
        if ch == "<":
            match = _TAG.match(text, pos)
            if match is None:
                raise HtmlError(f"Unsupported start tag at byte offset {pos}")
            closing, name = match.group(1) == "/", match.group(2).lower()
            if name not in HTML_TAGS:
                raise HtmlError(f'Unsupported start tag "{name}" at byte offset {pos}')
            if closing:
                if not stack or stack[-1] != name:
                    raise HtmlError(f'Unmatched end tag at byte offset {pos}, expected "</{name}>"')
                stack.pop()
            else:
                stack.append(name)
            pos = match.end()
        elif ch == "&":
            match = _ENTITY.match(text, pos)
            if match is None:
                raise HtmlError(f"Unknown entity or bare '&' at byte offset {pos}")
            out.append(html.unescape(match.group()))
            pos = match.end()
        elif ch == ">":
            raise HtmlError(f"Unexpected '>' at byte offset {pos}")
        else:
            out.append(ch)
            pos += 1
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)
