"""The Dockerfile's install steps (scripts/docker-install.sh) in a fresh venv: a broken step fails CI."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_docker_install_steps_build_and_install_the_wheel(tmp_path: Path) -> None:
    script = ROOT / "scripts" / "docker-install.sh"
    build = subprocess.run([str(script), "build", str(tmp_path / "dist")], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr
    assert list((tmp_path / "dist").glob("nt_mcp-*.whl"))
    install = subprocess.run(
        [str(script), "install", str(tmp_path / "dist"), str(tmp_path / "venv")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr
    assert install.stdout.strip().startswith("nt-mcp ")
    assert not (tmp_path / "venv" / "bin" / "pytest").exists()  # runtime deps only


def test_dockerfile_runs_the_script_as_non_root_with_a_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "docker-install.sh build" in text and "docker-install.sh install" in text
    assert "USER nt-mcp" in text and "/health/live" in text
    assert 'CMD ["nt-mcp", "serve", "--transport", "http"]' in text
