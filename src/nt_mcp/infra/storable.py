"""Values every storage backend accepts, whatever a client sent: the escaped form of awkward text.

PostgreSQL refuses two things a JSON client can send: the NUL character (``\\u0000``, in ``text`` and
in ``jsonb``) and lone UTF-16 surrogates (``\\ud886`` alone: not a character, so not UTF-8). Neither
may make a write fail (an audit row dropped, a spooled write stuck), so before such values are stored
they take this documented, reversible form:

- a string holding NUL or a lone surrogate (or already starting with the marker) is stored as
  ``"nt-escaped:" + <the string's JSON escape in ASCII, without the quotes>``: ``"a\\x00b"`` becomes
  ``'nt-escaped:a\\\\u0000b'``; `restore` turns it back (``json.loads('"' + rest + '"')``). Object keys
  are escaped the same way.
- non-finite floats (NaN, Infinity: not JSON) become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.
- strings longer than ``max_string`` characters keep their first ``max_string`` characters followed by
  ``"…[<n> chars, sha256 <first 16 hex>]"``; values nested deeper than ``max_depth`` become
  ``"…[nested deeper than <max_depth> levels]"``. These two are the only lossy steps, and they only
  touch values no tool accepts anyway (every tool argument is far shorter and flatter).
- anything else becomes JSON too: a pydantic model its JSON dump, a date or time its ISO 8601 text,
  anything else (a Decimal) its ``str``.

`ascii_json` writes a value as JSON text in pure ASCII (``\\u0000`` as six characters): what a ``text``
column can always hold. `safe_text` makes one string storable in a ``text`` column (error messages).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

ESCAPED_PREFIX = "nt-escaped:"
MAX_STRING = 4096
MAX_DEPTH = 32


def needs_escape(text: str) -> bool:
    """Whether ``text`` holds a NUL or a lone surrogate (or starts with the escape marker)."""
    if text.startswith(ESCAPED_PREFIX) or "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def escape_text(text: str) -> str:
    return ESCAPED_PREFIX + json.dumps(text, ensure_ascii=True)[1:-1] if needs_escape(text) else text


def _shorten(text: str, max_string: int) -> str:
    if len(text) <= max_string:
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{text[:max_string]}…[{len(text)} chars, sha256 {digest}]"


def storable(value: Any, *, max_string: int = MAX_STRING, max_depth: int = MAX_DEPTH) -> Any:
    """``value`` as plain JSON that SQLite's JSON and PostgreSQL's jsonb both accept (see the module)."""

    def walk(item: Any, depth: int) -> Any:
        if isinstance(item, str):
            return escape_text(_shorten(item, max_string))
        if item is None or isinstance(item, bool | int):
            return item
        if isinstance(item, float):
            if math.isfinite(item):
                return item
            return "NaN" if math.isnan(item) else ("Infinity" if item > 0 else "-Infinity")
        if depth >= max_depth and isinstance(item, dict | list | tuple):
            return f"…[nested deeper than {max_depth} levels]"
        if isinstance(item, dict):
            return {escape_text(_shorten(str(k), max_string)): walk(v, depth + 1) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v, depth + 1) for v in item]
        dump = getattr(item, "model_dump", None)
        if callable(dump):
            return walk(dump(mode="json"), depth)
        iso = getattr(item, "isoformat", None)  # datetime, date, time
        return walk(iso() if callable(iso) else str(item), depth)

    return walk(value, 0)


def restore(value: Any) -> Any:
    """The inverse of the escaping in `storable` (truncated strings stay truncated)."""
    if isinstance(value, str):
        if value.startswith(ESCAPED_PREFIX):
            return json.loads('"' + value[len(ESCAPED_PREFIX) :] + '"')
        return value
    if isinstance(value, dict):
        return {restore(k): restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [restore(v) for v in value]
    return value


def ascii_json(value: Any) -> str:
    """``value`` as JSON text in pure ASCII: every backend's ``text`` column stores it as it is."""
    return json.dumps(value, ensure_ascii=True, default=str)


def safe_text(text: str) -> str:
    """``text`` with NUL written ``\\x00`` and lone surrogates ``\\udXXX``: storable in any ``text`` column."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
