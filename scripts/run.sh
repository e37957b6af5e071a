#!/usr/bin/env bash
# The main command: the station with its embedded SQLite store and the demo
# district. Building it needs CMake and NASM (the photo pipeline's
# libjpeg-turbo is built from source, as on the phones); installed from
# Debian if missing. Arguments go to the station, e.g. `--listen 0.0.0.0:8080`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/system-deps.sh --build
exec cargo run --release -p menqian-sync-server -- --demo "$@"
