#!/usr/bin/env bash
# Builds MenqianCoreFFI.xcframework for devices and simulators (run on a Mac with
# Xcode): the Rust static library for each target, the generated C header and
# module map, then `xcodebuild -create-xcframework`. Needs
#   rustup target add aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios
# and CMake and NASM (`brew install cmake nasm`): libjpeg-turbo is built from
# turbojpeg-sys's vendored source for every target (pkg-config cannot serve a
# cross build).
set -euo pipefail
export TURBOJPEG_SOURCE=vendor
for tool in cargo cmake nasm; do
  command -v "$tool" >/dev/null || { echo "$tool not found: see the comment at the top of $0" >&2; exit 1; }
done
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
profile=release-small
bash bindings/generate.sh
for target in aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios; do
  cargo build -p menqian-bindings --profile "$profile" --target "$target"
done
out=ios/build
rm -rf "$out/MenqianCoreFFI.xcframework" "$out/sim" "$out/headers"
mkdir -p "$out/sim" "$out/headers"
# One simulator library for both Mac architectures.
lipo -create \
  "target/aarch64-apple-ios-sim/$profile/libmenqian.a" \
  "target/x86_64-apple-ios/$profile/libmenqian.a" \
  -output "$out/sim/libmenqian.a"
cp ios/MenqianKit/Sources/MenqianCoreFFI/include/MenqianCoreFFI.h "$out/headers/"
cp ios/MenqianKit/Sources/MenqianCoreFFI/include/module.modulemap "$out/headers/"
xcodebuild -create-xcframework \
  -library "target/aarch64-apple-ios/$profile/libmenqian.a" -headers "$out/headers" \
  -library "$out/sim/libmenqian.a" -headers "$out/headers" \
  -output "$out/MenqianCoreFFI.xcframework"
echo "built $out/MenqianCoreFFI.xcframework"
