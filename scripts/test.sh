#!/usr/bin/env bash
# Install what the tests need into .venv, then run every check CI runs:
# ruff (lint + format), mypy, the schema.graphql drift check and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real servers the tests start on free ports (Debian packages): redis-server for
# the content cache's Redis tests, Varnish 7 with varnish-modules (xkey) for
# the edge tests (tests/edge/; varnishd lives in /usr/sbin), and a browser.
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
PATH="$PATH:/usr/sbin" command -v varnishd >/dev/null 2>&1 || missing+=(varnish)
dpkg -s varnish-modules >/dev/null 2>&1 || missing+=(varnish-modules)
# Debian's Chromium for the storefront's browser tests (tests/storefront/):
# Playwright drives /usr/bin/chromium and never downloads a browser.
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # The packages would start their own services (varnish on :6081); the tests
  # need none. policy-rc.d answering 101 stops that for this install only
  # (Docker images already ship one).
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    trap '$SUDO rm -f "$policy"' EXIT
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
  fi
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  if [ -n "$(trap -p EXIT)" ]; then
    $SUDO rm -f "$policy"
    trap - EXIT
  fi
fi
if command -v ss >/dev/null 2>&1 && ss -ltn | grep -q ':6081 '; then
  echo "note: something listens on :6081 (a packaged varnish service?); tests/edge does not use it" >&2
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
