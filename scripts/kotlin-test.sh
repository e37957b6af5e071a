#!/usr/bin/env bash
# Builds the bindings library for this host, generates the Kotlin, compiles the
# Android library module's Kotlin layer with its JVM tests (kotlinc, JNA), and
# runs them against the real library and a real sync server on 127.0.0.1.
# Installs kotlinc and JNA itself (scripts/tools.sh). Part of scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/tools.sh

# The server, the library and the generator with the features of the test
# build (`cargo nextest run --workspace`: dev-dependencies included), so this
# reuses what it compiled and only links the generator. Building them with
# `-p` would unify other features and compile most of the workspace again
# (21 minutes of a clean run, measured 2026-12-02).
cargo build --quiet --locked --workspace --lib --bins --tests
bash bindings/generate.sh --built

lib="$KOTLIN_HOME/lib"
classpath="$JNA_JAR:$lib/kotlinx-coroutines-core-jvm.jar:$lib/kotlin-test.jar"
out="target/kotlin"
mkdir -p "$out"
echo "compiling the Kotlin layer and its tests (kotlinc $(cat "$KOTLIN_HOME/build.txt"))"
"$KOTLIN_HOME/bin/kotlinc" -nowarn -jvm-target 17 -classpath "$classpath" \
  -d "$out/menqian-tests.jar" \
  android/menqian/src/main/kotlin android/menqian/src/test/kotlin
java -Djna.library.path="$root/target/debug" \
  -Dmenqian.repo="$root" \
  -Dmenqian.server="$root/target/debug/menqian-sync-server" \
  -cp "$out/menqian-tests.jar:$classpath:$lib/kotlin-stdlib.jar" \
  cn.menqian.MenqianTestKt
