"""Reading tool results the way a client does: the error envelope of an ``isError`` result."""

from __future__ import annotations

import json
from typing import Any

from mcp_types import CallToolResult, TextContent

ERROR_META_KEY = "nt-mcp/error"


def error_of(result: CallToolResult) -> dict[str, Any]:
    """The ``{"code", "message", "retryable", ...}`` envelope of a failed call.

    Asserts the shape every client relies on: ``isError``, no ``structuredContent`` (so clients that
    validate it against the tool's output schema accept the result), the envelope as the JSON text of
    the first content block, and the same envelope under ``_meta["nt-mcp/error"]``.
    """
    assert result.is_error, f"expected an error, got {result.structured_content}"
    assert result.structured_content is None, "error results carry no structuredContent"
    first = result.content[0]
    assert isinstance(first, TextContent)
    envelope = json.loads(first.text)["error"]
    assert result.meta is not None and result.meta[ERROR_META_KEY] == envelope
    return dict(envelope)
