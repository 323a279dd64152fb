#!/usr/bin/env bash
# Set up dlvision on a fresh machine: bubblewrap (the student sandbox) and a virtual environment in .venv.
# Safe to run again: it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: bubblewrap (the student sandbox), util-linux's setpriv (dropping root's rights in it),
# PostgreSQL (a course's gradebook may live there; the tests start a server of their own), and Chromium with its
# driver (the browser tests drive JupyterLab and formgrader in it).
missing=""
command -v bwrap >/dev/null 2>&1 || missing="$missing bubblewrap"
command -v setpriv >/dev/null 2>&1 || missing="$missing util-linux"
{ command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing="$missing postgresql"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
[ -x /usr/bin/chromedriver ] || missing="$missing chromium-driver"
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing
  else
    echo "WARNING: cannot install$missing without root." >&2
    echo "         Without bubblewrap student code runs UNSANDBOXED (Debian/Ubuntu: sudo apt-get install bubblewrap);" >&2
    echo "         without PostgreSQL or Chromium their tests are skipped." >&2
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
