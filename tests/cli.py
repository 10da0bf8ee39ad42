"""Running the real `nt-mcp` command in tests: an environment free of the developer's NT_ settings."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def server_env(data_home: Path, **settings: str) -> dict[str, str]:
    """This process's environment without any NT_ variable, plus NT_DATA_HOME and ``settings``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("NT_")}
    return clean | {"NT_DATA_HOME": str(data_home)} | settings


def run_cli(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """``python -m nt_mcp ARGS`` in ``tmp_path`` with data in ``tmp_path/data``; never reads stdin."""
    return subprocess.run(
        [sys.executable, "-m", "nt_mcp", *args],
        env=server_env(tmp_path / "data", **settings),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
