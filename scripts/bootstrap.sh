#!/usr/bin/env bash
# Create .venv and install the project with its development tools (idempotent).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "bootstrap: Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PYTHON" -m venv .venv 2>/dev/null; then
    echo "bootstrap: installing python3-venv" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2
    "$PYTHON" -m venv .venv
  fi
fi
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: installing hotline-router and its dependencies into .venv" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  # otel: the development environment has the tracing extra so that its hooks are tested
  .venv/bin/python -m pip install --quiet -e ".[dev,otel]"
  touch "$stamp"
fi
