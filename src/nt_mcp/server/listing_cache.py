"""The tools/list answer kept on disk, so a stdio server answers the handshake without building its tools.

Building the listing (importing the 56 tools' modules, generating their input and output JSON schemas)
was half the server's start. `nt-mcp serve` over stdio writes what a full build lists, each tool with
the scope it needs, to ``<NT_DATA_HOME>/cache/tools-list-<toolsets>.json`` and, on the next start,
answers tools/list from that file while the tools are registered after the handshake (`server.app`).

The file is used only if its key matches `listing_key`: a SHA-256 over the Python, pydantic and
pydantic-core versions, the ``NT_TOOLSETS`` setting, and the path, size and modification time (ns) of
every ``.py`` file of nt-mcp, of the SDK's ``mcp.server.mcpserver`` (which derives the schemas) and of
``mcp_types``: any edit, upgrade or reinstall of those changes the key and the listing is rebuilt. A
missing, stale, unreadable or corrupt file is a miss (a full build follows); a write goes to a
temporary file renamed over the old one (`os.replace`), so two servers writing at once leave one whole
file, and a write that fails (read-only data home) is logged and ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import pydantic_core
from mcp_types import Tool as MCPTool

import nt_mcp

log = logging.getLogger(__name__)

FORMAT = 1  # bumped when the file's layout changes


@dataclass(frozen=True)
class Listing:
    """What tools/list shows before any principal filter, in registry order, and each tool's scope."""

    tools: tuple[MCPTool, ...]
    scopes: dict[str, str]

    def to_json(self, key: str) -> str:
        """The file's text. Each tool is dumped with only the fields that were set, so `load` rebuilds
        models that serialise exactly as the originals (set-ness decides ``exclude_unset`` dumps)."""
        entries = [
            {"scope": self.scopes[tool.name], "tool": tool.model_dump(mode="json", by_alias=True, exclude_unset=True)}
            for tool in self.tools
        ]
        return json.dumps({"format": FORMAT, "key": key, "tools": entries}, separators=(",", ":"))


def _package_dir(module: Any) -> Path:
    return Path(module.__file__).resolve().parent


def _source_roots() -> list[Path]:
    import mcp.server.mcpserver as mcpserver
    import mcp_types

    return [_package_dir(nt_mcp), _package_dir(mcpserver), _package_dir(mcp_types)]


def listing_key(toolsets: str) -> str:
    """The SHA-256 that a cached listing must carry to be used (see the module docstring)."""
    digest = hashlib.sha256()
    header = [FORMAT, sys.version, pydantic.VERSION, pydantic_core.__version__, nt_mcp.__version__, toolsets]
    digest.update(json.dumps(header).encode())
    for root in _source_roots():
        for folder, dirs, files in os.walk(root):
            dirs.sort()
            dirs[:] = [name for name in dirs if name != "__pycache__"]
            for name in sorted(files):
                if name.endswith(".py"):
                    stat = os.stat(os.path.join(folder, name))
                    digest.update(f"{folder}/{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cache_path(data_home: Path, toolsets: str) -> Path:
    """Where the listing for ``toolsets`` lives (one file per setting, so two configurations sharing a
    data home do not overwrite each other's)."""
    tag = hashlib.sha256(toolsets.encode()).hexdigest()[:12]
    return data_home / "cache" / f"tools-list-{tag}.json"


def load(path: Path, key: str) -> Listing | None:
    """The listing stored at ``path`` if it carries ``key``; None when missing, stale or unreadable."""
    try:
        document = json.loads(path.read_bytes())
        if document.get("format") != FORMAT or document.get("key") != key:
            return None
        tools = tuple(MCPTool.model_validate(entry["tool"]) for entry in document["tools"])
        scopes = {tool.name: str(entry["scope"]) for tool, entry in zip(tools, document["tools"], strict=True)}
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError, pydantic.ValidationError) as error:
        log.warning("tool listing cache unreadable, rebuilding it", extra={"path": str(path), "error": repr(error)})
        return None
    if len(scopes) != len(tools):
        return None
    return Listing(tools, scopes)


def store(path: Path, key: str, listing: Listing) -> bool:
    """Write ``listing`` under ``key`` atomically (temporary file + `os.replace`); False if it could not."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(listing.to_json(key))
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as error:
        log.warning("tool listing cache not written", extra={"path": str(path), "error": repr(error)})
        return False
    return True
