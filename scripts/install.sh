#!/usr/bin/env bash
# Set up dlvision on a fresh machine: bubblewrap (the student sandbox) and a virtual environment in .venv.
# Safe to run again: it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq bubblewrap
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo apt-get install -y -qq bubblewrap
  else
    echo "WARNING: bubblewrap is missing and cannot be installed without root: student code will run UNSANDBOXED." >&2
    echo "         Install it (Debian/Ubuntu: sudo apt-get install bubblewrap) before grading real submissions." >&2
  fi
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if [ ! -f .venv/.installed ] || [ pyproject.toml -nt .venv/.installed ] || [ "$0" -nt .venv/.installed ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first, pinned to the build that this course is tested with (and that torchvision matches).
  .venv/bin/python -m pip install -q torch==2.14.1 torchvision==0.29.1
  .venv/bin/python -m pip install -q -e '.[test]'
  touch .venv/.installed
fi
echo "dlvision is installed in .venv ($(.venv/bin/dlvision --version))"
