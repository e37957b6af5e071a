#!/usr/bin/env bash
# Bindings figures (docs/benchmarks.md): the size of the phone library built
# with the size-optimised profile (opt-level "s", LTO, strip) for this host,
# and the Kotlin call overhead of a QR lookup through the binding.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/tools.sh
bash bindings/generate.sh
cargo build --quiet -p menqian-bindings --profile release-small
so="target/release-small/libmenqian.so"
echo "libmenqian.so (release-small, $(uname -m)): $(stat -c %s "$so") bytes ($(( $(stat -c %s "$so") / 1024 )) KiB)"
lib="$KOTLIN_HOME/lib"
classpath="$JNA_JAR:$lib/kotlinx-coroutines-core-jvm.jar"
mkdir -p target/kotlin
"$KOTLIN_HOME/bin/kotlinc" -nowarn -jvm-target 17 -classpath "$classpath" \
  -d target/kotlin/menqian-bench.jar \
  android/menqian/src/main/kotlin android/menqian/src/bench/kotlin
java -Djna.library.path="$root/target/release-small" -Dmenqian.repo="$root" \
  -cp "target/kotlin/menqian-bench.jar:$classpath:$lib/kotlin-stdlib.jar" cn.menqian.QrBenchKt
