#!/usr/bin/env bash
# Creates the virtual environment and installs LUMA-RAG with what its tests need.
# Works on a fresh machine: only python3 with venv and pip are assumed; Debian packages the
# project needs (espeak-ng for the spoken captions of LUMA-Shapes, chromium for the browser
# test; never a browser download of Playwright's own) are installed with apt-get
# when missing and we are root.
set -euo pipefail
PYTHON=${1:-python3}
VENV=${2:-.venv}

need_apt=()
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)  # the browser test drives Debian's Chromium
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get install ${need_apt[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install ${need_apt[*]} (e.g. sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first, pinned to the builds this machine keeps on disk (a CUDA build that runs on CPU;
# open_clip needs torchvision), so that no later requirement pulls a different one.
if ! "$VENV/bin/python" -c "import torch, torchvision" >/dev/null 2>&1; then
  echo "setup: installing torch 2.14.1 + torchvision 0.29.1 (a few minutes)"
  "${PIP[@]}" "torch==2.14.1" "torchvision==0.29.1"
fi
"${PIP[@]}" -e ".[dev,datasets,models,langchain,llama-index,llava,app,server,transcribe,ocr]"
