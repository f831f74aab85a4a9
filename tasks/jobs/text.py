"""Text from outside (messages, exceptions, ids) made safe to store, log and show.

An exception message or a forged message's id can hold NUL, lone surrogates,
newlines or megabytes. PostgreSQL refuses NUL and unpaired surrogates in text
and ``jsonb``; UTF-8 encoders raise on surrogates; a newline in a log line
forges another line. These helpers never raise.
"""

from __future__ import annotations

import reprlib

_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlevel = 3


def short_repr(value: object) -> str:
    """``repr`` bounded in length and depth (a 100,000-deep value recurses in plain ``repr``)."""
    try:
        return _REPR.repr(value)
    except Exception:  # a hostile __repr__: say what it is, not what it claims
        return f"<{type(value).__name__}>"


def storable(text: str, limit: int) -> str:
    """``text`` with NUL and lone surrogates escaped, cut to ``limit`` characters."""
    if len(text) > 6 * limit:  # escaping below grows it at most sixfold: cut the rest first
        text = text[:6 * limit]
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        text = text[:limit - 15] + " …(truncated)"
    return text


def one_line(text: str, limit: int = 200) -> str:
    """``text`` for a log line: control characters escaped, so it cannot start a new line."""
    text = storable(text, limit)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)
