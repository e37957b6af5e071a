#!/usr/bin/env bash
# Runs every check and every test of the workspace: format, lints, then the
# test suites (unit, integration, and the 200-case convergence property test).
# CI runs exactly this (.ci/run). It needs only a Rust toolchain with cargo;
# cargo fetches the crates. Benchmarks are not run here (docs/benchmarks.md).
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

echo "== format"
cargo fmt --all -- --check
echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --profile ci
else
  cargo test --workspace --locked
fi
