#!/usr/bin/env bash
# Runs the automerge-repo side of the bootstrap comparison (docs/benchmarks.md):
#   bash sync-server/benches/automerge-repo/run.sh 2000 [time limit s]
# Installs the pinned npm packages here (not committed), writes the first N demo
# shops with Menqian's generator, serves them through automerge-repo's sync
# server on 127.0.0.1 and times a fresh client fetching them all.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../../.."
n="${1:-2000}"
limit="${2:-600}"
cd "$here"
[ -d node_modules/@automerge/automerge-repo-sync-server ] || npm install --no-audit --no-fund --no-package-lock >/dev/null
work="$(mktemp -d)"
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
(cd "$root" && cargo run -q --release -p menqian-fixtures -- generate "$n" --out "$work/shops.json")
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
mkdir -p "$work/data"
PORT="$port" DATA_DIR="$work/data" node node_modules/@automerge/automerge-repo-sync-server/src/index.js >/dev/null 2>&1 &
server=$!
for _ in $(seq 100); do curl -s "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.1; done
node compare.mjs "$work/shops.json" "$port" "$work/data" "$limit"
