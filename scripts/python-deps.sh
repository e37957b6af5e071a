#!/usr/bin/env bash
# Installs the Python the Open311 conformance test runs, once, into
# .tools/open311-py (ignored by git): the third-party GeoReport v2 client
# `georeport` (pinned) and what it uses. Sourced by scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OPEN311_PY="$root/.tools/open311-py"
if ! PYTHONPATH="$OPEN311_PY" python3 -c "import georeport, requests, xmltodict" 2>/dev/null; then
  echo "installing georeport 0.3.1, requests, xmltodict (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$OPEN311_PY" georeport==0.3.1 requests==2.32.4 xmltodict==0.14.2
fi
