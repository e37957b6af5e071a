#!/usr/bin/env bash
# Runs every check and every test: format, lints, the Rust test suites (unit,
# integration, the 200-case convergence property test, the console's tests in
# headless Chromium, which save a screenshot of every page under
# target/screenshots/), the Kotlin layer's JVM
# tests against the real library and a real server, and a syntax check of every
# Swift file. CI runs exactly this (.ci/run). It needs a Rust toolchain, Java 17,
# npm and Python 3; scripts/system-deps.sh installs libjpeg-turbo and the test
# photos (apt), scripts/tools.sh kotlinc, JNA and tree-sitter.
# Benchmarks are not run here (docs/benchmarks.md).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi
# fmt and clippy ship with rustup's default profile; add them if this toolchain lacks them.
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    rustup component add "$component"
  fi
done

# A clean run writes about 3 GB under target/ (README, "The two commands"); say so
# up front rather than fail mid-build with "No space left on device".
free_mb=$(df -Pm . 2>/dev/null | awk 'NR == 2 { print $4 }') || free_mb=""
echo "disk: ${free_mb:-unknown} MB free here"
if [[ "$free_mb" =~ ^[0-9]+$ ]] && [ "$free_mb" -lt 4000 ]; then
  echo "warning: a clean run needs about 3 GB for target/; free some space if the build fails" >&2
fi

echo "== system packages"
bash scripts/system-deps.sh
echo "== the console's browser files (npm, pinned) against what is committed"
bash scripts/vendor-assets.sh --check
echo "== format"
cargo fmt --all -- --check
echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== the Open311 test's Python client and moto's S3 server (PyPI, pinned)"
source scripts/python-deps.sh
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --profile ci
else
  cargo test --workspace --locked
fi
echo "== Kotlin (JVM tests of the Android library module)"
bash scripts/kotlin-test.sh
echo "== Swift (syntax of every .swift file under ios/)"
source scripts/tools.sh
PYTHONPATH="$TREE_SITTER_PY" python3 scripts/swift-check.py ios
