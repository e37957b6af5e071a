#!/usr/bin/env bash
# The console's third-party browser files, at pinned versions from the npm
# registry, copied into sync-server/assets/vendor/ (the station embeds them:
# no CDN, a station may have no internet). Each line of ASSETS is
#   package@version  file-in-the-package  name-under-vendor/
# With --check (run by scripts/test.sh), fetches the same packages and fails if
# a committed file differs from what the registry serves; without it, writes
# the files. npm verifies each tarball against the registry's integrity hash.
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS="
leaflet@1.9.4           package/dist/leaflet.js           leaflet.js
leaflet@1.9.4           package/dist/leaflet.css          leaflet.css
leaflet@1.9.4           package/LICENSE                   LICENSE-leaflet
leaflet.heat@0.2.0      package/dist/leaflet-heat.js      leaflet-heat.js
leaflet.heat@0.2.0      package/LICENSE                   LICENSE-leaflet.heat
supercluster@8.0.1      package/dist/supercluster.min.js  supercluster.min.js
supercluster@8.0.1      package/LICENSE                   LICENSE-supercluster
"
out=sync-server/assets/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
packages=$(echo "$ASSETS" | awk 'NF { print $1 }' | sort -u)
(cd "$work" && npm pack --silent $packages >/dev/null)
status=0
while read -r pkg file name; do
  [ -n "${pkg:-}" ] || continue
  tgz="$work/$(echo "${pkg%@*}" | tr -d '@' | tr '/' '-')-${pkg##*@}.tgz"
  mkdir -p "$work/x/$pkg"
  tar xzf "$tgz" -C "$work/x/$pkg" "$file"
  if [ "${1:-}" = "--check" ]; then
    if ! cmp -s "$work/x/$pkg/$file" "$out/$name"; then
      echo "vendor: $out/$name differs from $pkg $file (run scripts/vendor-assets.sh)" >&2
      status=1
    fi
  else
    mkdir -p "$out"
    cp "$work/x/$pkg/$file" "$out/$name"
  fi
done <<< "$ASSETS"
exit $status
