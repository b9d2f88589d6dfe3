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
echo "== live CMS installs"
# tests/cms_live runs real Directus 11 and Strapi 5 from npm. Their installs are
# kept in ${TESSERA_CMS_CACHE:-~/.cache/tessera-cms} and reused while the pinned
# lockfiles (tests/cms_live/*_app/package-lock.json) do not change; a cold
# install compiles native modules and takes several minutes, so it happens here,
# before pytest, where a failure is plain.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "node and npm are needed for tests/cms_live (Node.js 20 or later)" >&2
  exit 1
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "tests/cms_live needs Node.js 20 or later, found $(node --version)" >&2
  exit 1
fi
cms_started=$(date +%s)
.venv/bin/python -m tests.cms_live.install
echo "live CMS installs ready in $(( $(date +%s) - cms_started )) s"
echo "== pytest"
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  # pytest's "no tests collected": nothing failed, but say so loudly.
  echo "pytest collected no tests" >&2
  exit 0
fi
exit "$status"
