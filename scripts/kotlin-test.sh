#!/usr/bin/env bash
# Builds the bindings library for this host, generates the Kotlin, compiles the
# Android library module's Kotlin layer with its JVM tests (kotlinc, JNA), and
# runs them against the real library and a real sync server on 127.0.0.1.
# Installs kotlinc and JNA itself (scripts/tools.sh). Part of scripts/test.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/tools.sh

# One build of the server, the library and the generator, so the features are
# unified once (a server built alone would rebuild the core without photos);
# bindings/generate.sh then finds its build done.
cargo build --quiet -p menqian-sync-server -p menqian-bindings -p uniffi-bindgen
bash bindings/generate.sh

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
