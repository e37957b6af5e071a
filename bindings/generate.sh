#!/usr/bin/env bash
# Builds the bindings library and generates its Kotlin and Swift from it
# (uniffi library mode; uniffi.toml sets the Kotlin package and Swift module):
#   Kotlin → android/menqian/src/main/kotlin/cn/menqian/core/menqian.kt
#   Swift  → ios/MenqianKit/Sources/MenqianCore/MenqianCore.swift, and the C
#            header and module map → ios/MenqianKit/Sources/MenqianCoreFFI/
# Usage: bindings/generate.sh [--built]
#   --built: the caller built target/debug/libmenqian and uniffi-bindgen already
#            (scripts/kotlin-test.sh, with the test build's features).
# The generator reads uniffi's metadata from the library's symbol table, which
# the stripped phone build (profile release-small) no longer has, so it reads the
# dev build; the generated code is the same for every profile of the same source.
# The generated files are not committed; Gradle and the XCFramework script run this.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ "${1:-}" != "--built" ]; then
  cargo build --quiet -p menqian-bindings -p uniffi-bindgen
fi
lib="target/debug/libmenqian.so"
[ -f "$lib" ] || lib="target/debug/libmenqian.dylib"
bindgen() { target/debug/uniffi-bindgen generate "$lib" --no-format "$@"; }

kotlin="android/menqian/src/main/kotlin"
rm -rf "$kotlin/cn/menqian/core"
bindgen --language kotlin --out-dir "$kotlin"

swift="ios/MenqianKit/Sources"
tmp="$(mktemp -d)"
bindgen --language swift --out-dir "$tmp"
mkdir -p "$swift/MenqianCore" "$swift/MenqianCoreFFI/include"
mv "$tmp/MenqianCore.swift" "$swift/MenqianCore/"
mv "$tmp/MenqianCoreFFI.h" "$swift/MenqianCoreFFI/include/"
# SwiftPM and XCFrameworks look for module.modulemap.
mv "$tmp/MenqianCoreFFI.modulemap" "$swift/MenqianCoreFFI/include/module.modulemap"
rm -rf "$tmp"
echo "generated from $lib: $kotlin/cn/menqian/core, $swift/MenqianCore, $swift/MenqianCoreFFI"
