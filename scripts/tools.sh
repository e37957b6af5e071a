#!/usr/bin/env bash
# Installs what the Kotlin and Swift checks need, once, into .tools/ (ignored by
# git) or from Debian:
#   kotlinc 2.4.20 with kotlinx-coroutines and kotlin-test  (npm kotlin-compiler)
#   JNA ≥ 5.12 for the generated Kotlin                     (Debian libjna-java)
#   tree-sitter + tree-sitter-swift to parse Swift          (PyPI)
# Prints nothing but what it installs. Sourced by scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="$root/.tools"
mkdir -p "$tools"

KOTLIN_VERSION=2.4.20
if [ "$(cat "$tools/node_modules/kotlin-compiler/build.txt" 2>/dev/null)" != "$KOTLIN_VERSION" ]; then
  command -v npm >/dev/null || { echo "npm is needed to install kotlinc (apt-get install -y npm)" >&2; exit 1; }
  echo "installing kotlinc $KOTLIN_VERSION (npm kotlin-compiler)"
  npm install --silent --no-save --no-package-lock --prefix "$tools" "kotlin-compiler@$KOTLIN_VERSION"
fi
export KOTLIN_HOME="$tools/node_modules/kotlin-compiler"

export JNA_JAR=/usr/share/java/jna.jar
if [ ! -f "$JNA_JAR" ]; then
  echo "installing JNA (Debian libjna-java)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get install -y -qq libjna-java >/dev/null || {
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libjna-java >/dev/null; }
fi

export TREE_SITTER_PY="$tools/py"
if ! PYTHONPATH="$TREE_SITTER_PY" python3 -c "import tree_sitter, tree_sitter_swift" 2>/dev/null; then
  echo "installing tree-sitter and tree-sitter-swift (PyPI)"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
    --target "$TREE_SITTER_PY" tree-sitter tree-sitter-swift
fi
