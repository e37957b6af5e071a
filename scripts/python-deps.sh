#!/usr/bin/env bash
# Installs the Python the tests run, once, into .tools/ (ignored by git): the
# third-party GeoReport v2 client `georeport` (pinned) and what it uses, for
# the Open311 conformance test (.tools/open311-py), and moto's S3 server
# (`moto[server]`, pinned) for the object-storage test (.tools/moto-py).
# Sourced by scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export OPEN311_PY="$root/.tools/open311-py"
if ! PYTHONPATH="$OPEN311_PY" python3 -c "import georeport, requests, xmltodict" 2>/dev/null; then
  echo "installing georeport 0.3.1, requests, xmltodict (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$OPEN311_PY" georeport==0.3.1 requests==2.32.4 xmltodict==0.14.2
fi
export MENQIAN_MOTO_PY="$root/.tools/moto-py"
if ! PYTHONPATH="$MENQIAN_MOTO_PY" python3 -c "import sys, moto, moto.server; sys.exit(moto.__version__ != '5.2.1')" 2>/dev/null; then
  echo "installing moto[server] 5.2.1 (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$MENQIAN_MOTO_PY" "moto[server]==5.2.1"
fi
