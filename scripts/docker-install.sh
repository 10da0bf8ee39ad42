#!/usr/bin/env bash
# The Dockerfile's install steps, runnable anywhere (CI runs them in a fresh venv: tests/integration/test_docker_install.py).
#   scripts/docker-install.sh build  DIST       build the wheel of this checkout into DIST (builder stage)
#   scripts/docker-install.sh install DIST VENV install only that wheel and its runtime deps into VENV (final stage)
#                                              and check the entry point answers
set -euo pipefail
step="${1:?usage: docker-install.sh build DIST | install DIST VENV}"
case "$step" in
  build)
    dist="${2:?DIST}"
    python3 -m pip wheel --no-deps --wheel-dir "$dist" "$(dirname "$0")/.."
    ;;
  install)
    dist="${2:?DIST}"; venv="${3:?VENV}"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --no-cache-dir -q "$dist"/nt_mcp-*.whl
    "$venv/bin/nt-mcp" --version
    ;;
  *)
    echo "unknown step $step" >&2; exit 2 ;;
esac
