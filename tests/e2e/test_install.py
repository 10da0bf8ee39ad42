"""Installing like the MCP ecosystem does, from this checkout: `uvx --from <path or git URL> nt-mcp serve`,
`uv tool install` and `pipx install`, each answering a real MCP client over stdio. uv and pipx come from PyPI
(the `test` extra); packages from PyPI, cached in .ci-cache/uv (git-ignored) so repeated runs are quick."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

from nt_mcp import __version__

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(VENV_BIN)) or shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: it is in the `test` extra (pip install -e '.[test]')")
    return path


def _env(tmp_path: Path) -> dict[str, str]:
    """No NT_ settings of the developer's; uv's and pipx's state in the test's directory, uv's cache kept."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NT_", "UV_", "PIPX_", "VIRTUAL_ENV"))}
    return env | {
        "UV_CACHE_DIR": str(ROOT / ".ci-cache" / "uv"),
        "UV_TOOL_DIR": str(tmp_path / "uv-tools"),
        "UV_TOOL_BIN_DIR": str(tmp_path / "bin"),
        "UV_PYTHON": sys.executable,  # this machine's Python; never download one
        "UV_PYTHON_DOWNLOADS": "never",
        "PIPX_HOME": str(tmp_path / "pipx"),
        "PIPX_BIN_DIR": str(tmp_path / "bin"),
        "PIPX_MAN_DIR": str(tmp_path / "man"),
        "NT_DATA_HOME": str(tmp_path / "data"),
    }


def _run(tmp_path: Path, *command: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


async def _serves_mcp(tmp_path: Path, command: str, *args: str) -> None:
    params = StdioServerParameters(command=command, args=list(args), env=_env(tmp_path), cwd=str(tmp_path))
    async with Client(params, read_timeout_seconds=300) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        status = await client.call_tool("server_status", {})
    assert {"run_backtest", "place_order", "server_status"} <= tools
    assert status.structured_content["version"] == __version__ and status.structured_content["mode"] == "paper"


async def test_uvx_from_the_checkout_is_a_whole_client_config(tmp_path: Path) -> None:
    # what `claude mcp add nt-mcp -- uvx --from /path/to/nt-mcp nt-mcp serve` runs; --refresh-package
    # rebuilds from the current sources (uv caches a path build until pyproject.toml changes)
    await _serves_mcp(tmp_path, _tool("uvx"), "--refresh-package", "nt-mcp", "--from", str(ROOT), "nt-mcp", "serve")


def test_uvx_from_a_git_url(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    url = f"git+file://{ROOT}"
    result = _run(tmp_path, _tool("uvx"), "--refresh-package", "nt-mcp", "--from", url, "nt-mcp", "--version")
    assert result.stdout.strip() == f"nt-mcp {__version__}"


async def test_uv_tool_install_puts_nt_mcp_on_the_tool_path(tmp_path: Path) -> None:
    _run(tmp_path, _tool("uv"), "tool", "install", "--reinstall", str(ROOT))
    installed = tmp_path / "bin" / "nt-mcp"
    assert _run(tmp_path, str(installed), "--version").stdout.strip() == f"nt-mcp {__version__}"
    await _serves_mcp(tmp_path, str(installed), "serve")


def test_pipx_install(tmp_path: Path) -> None:
    _run(tmp_path, _tool("pipx"), "install", "--force", str(ROOT))
    installed = tmp_path / "bin" / "nt-mcp"
    assert _run(tmp_path, str(installed), "--version").stdout.strip() == f"nt-mcp {__version__}"


def test_the_readme_client_snippets_are_valid_json() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```json\n(.*?)```", readme, flags=re.DOTALL)
    configs = [json.loads(block) for block in blocks if '"mcpServers"' in block or '"servers"' in block]
    assert len(configs) >= 4  # Claude Desktop, VS Code, Cursor, the HTTP endpoint
    for config in configs:
        (server,) = (config.get("mcpServers") or config["servers"]).values()
        assert server.get("url") or (server["command"].startswith("/") and "serve" in server["args"])
