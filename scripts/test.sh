#!/usr/bin/env bash
# Install what the tests need into .venv, then run every check CI runs:
# ruff (lint + format), mypy, the schema.graphql drift check and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# The content cache's Redis tests need a real redis-server (Debian package).
if ! command -v redis-server >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== schema.graphql"
.venv/bin/python -m gateway export-schema --check
echo "== pytest"
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  # pytest's "no tests collected": nothing failed, but say so loudly.
  echo "pytest collected no tests" >&2
  exit 0
fi
exit "$status"
