#!/usr/bin/env bash
# One command for the example storefront (examples/storefront): Tessera on its
# embedded defaults (the README's quick start) and the app's dev server in
# front of it, at http://127.0.0.1:5173. Ctrl-C stops both.
#
# First run: makes .venv with the `embedded` extra (as the quick start does)
# and installs the app's pinned npm packages (npm ci; needs Node.js 20.19+).
# Settings: see examples/storefront/scripts/dev.mjs (STOREFRONT_PORT,
# TESSERA_PORT, TESSERA_URL to use a gateway that already runs, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c 'import gateway, secantus' 2>/dev/null; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[embedded]'
fi
cd examples/storefront
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
exec node scripts/dev.mjs
