#!/usr/bin/env bash
# Installs the Debian packages lmx builds with (DESIGN.md: Dependencies).
# Idempotent and quiet when everything is already present.
set -euo pipefail
pkgs=(cmake ninja-build g++ pkg-config ccache python3 python3-jsonschema
      nlohmann-json3-dev libpcre2-dev libutf8proc-dev libcurl4-openssl-dev
      libcpp-httplib-dev libstb-dev libcli11-dev libfmt-dev
      libpng-dev libjpeg62-turbo-dev libwebp-dev libgif-dev  # lmx/vision image decoding
      libgtest-dev libgmock-dev libbenchmark-dev
      clang libclang-rt-14-dev llvm)  # make sanitize-test: ASan/UBSan/libFuzzer, llvm-symbolizer
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
