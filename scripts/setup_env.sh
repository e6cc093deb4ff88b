#!/usr/bin/env bash
# Creates the virtual environment and installs LUMA-RAG with what its tests need.
# Works on a fresh machine: only python3 with venv and pip are assumed.
set -euo pipefail
PYTHON=${1:-python3}
VENV=${2:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" -e ".[dev]"
