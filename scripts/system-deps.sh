#!/usr/bin/env bash
# Installs the Debian packages the build and the tests need, if missing:
#   cmake, nasm                    to build libjpeg-turbo from turbojpeg-sys's vendored
#                                  source (TURBOJPEG_SOURCE=vendor, as on phones)
#   openssl                        the TLS tests' second opinion on certificates
#   mate-backgrounds               real camera photos the tests process (a Sony RX100
#   lomiri-wallpapers              photo with EXIF; a 15.9 MP CC0 photo)
#   chromium, chromium-driver      the console's browser tests (headless, over WebDriver)
#   fonts-noto-cjk                 Chinese in the browser's screenshots, and the font
#                                  the station sets signboards in
#   poppler-utils                  the signboard tests render and read the PDFs
#                                  (pdftoppm, pdftotext, pdffonts)
#   postgresql                     the PostgreSQL backend's tests start private
#                                  clusters (initdb, pg_ctl) on free ports
#   haproxy                        the city tests put it in front of three instances
#   libjpeg-turbo-progs            jpegtran: the JPEG decoder's tests make progressive,
#                                  restart-marker and arithmetic-coded variants
# With `--bench` also the peers the photo benchmark runs side by side:
#   libvips-tools, imagemagick
# With `--build` only what building the station needs (cmake, nasm), for the
# main command (scripts/run.sh).
# Prints nothing when everything is there. Sourced or run by scripts/test.sh.
set -euo pipefail
packages=(cmake nasm openssl mate-backgrounds lomiri-wallpapers chromium chromium-driver fonts-noto-cjk poppler-utils postgresql haproxy libjpeg-turbo-progs)
if [ "${1:-}" = "--bench" ]; then
  packages+=(libvips-tools imagemagick)
elif [ "${1:-}" = "--build" ]; then
  packages=(cmake nasm)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (apt)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }
fi
