#!/usr/bin/env bash
# Installs the Debian packages lmx builds with (DESIGN.md: Dependencies).
# Idempotent and quiet when everything is already present.
#   tools/setup.sh          the host build's packages
#   tools/setup.sh --arm64  the aarch64 cross build's too (make arm-test): Debian's cross
#                           compiler, qemu-user, and the arm64 multiarch -dev packages of the
#                           libraries lmx links (dpkg --add-architecture arm64 first).
#                           Silent; exits non-zero when they cannot be installed.
#   tools/setup.sh --browser  Debian's chromium, for the chat page's browser test
#                           (tools/web-chat-check). Silent; non-zero when it cannot be installed.
set -euo pipefail
pkgs=(cmake ninja-build g++ pkg-config ccache python3 python3-jsonschema
      nlohmann-json3-dev libpcre2-dev libutf8proc-dev libcurl4-openssl-dev
      libcpp-httplib-dev libstb-dev libcli11-dev libfmt-dev
      libpng-dev libjpeg62-turbo-dev libwebp-dev libgif-dev  # lmx/vision image decoding
      libavformat-dev libavcodec-dev libswscale-dev libavutil-dev  # lmx/vision video (optional in CMake)
      libgtest-dev libgmock-dev libbenchmark-dev
      clang libclang-rt-14-dev llvm)  # make sanitize-test: ASan/UBSan/libFuzzer, llvm-symbolizer
# The libraries lmx links, as arm64 packages (the header-only ones, nlohmann-json and
# CLI11, are architecture-independent and come with the host's list).
arm64_pkgs=(g++-aarch64-linux-gnu qemu-user
            libfmt-dev:arm64 libpcre2-dev:arm64 libutf8proc-dev:arm64
            libcurl4-openssl-dev:arm64 libcpp-httplib-dev:arm64
            libpng-dev:arm64 libjpeg62-turbo-dev:arm64 libwebp-dev:arm64 libgif-dev:arm64
            libgtest-dev:arm64 libgmock-dev:arm64)

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"

missing_of() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
  done
}

install_pkgs() {
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ "${1:-}" = "--browser" ]; then
  [ -z "$(missing_of chromium)" ] && exit 0
  install_pkgs chromium >/dev/null 2>&1
  exit
fi

if [ "${1:-}" = "--arm64" ]; then
  missing=()
  while read -r p; do [ -n "$p" ] && missing+=("$p"); done < <(missing_of "${arm64_pkgs[@]}")
  [ ${#missing[@]} -eq 0 ] && exit 0
  # Silent either way: make arm-test says in one line what came of it.
  {
    dpkg --print-foreign-architectures | grep -qx arm64 || $sudo_cmd dpkg --add-architecture arm64
    install_pkgs "${missing[@]}"
  } >/dev/null 2>&1
  exit
fi

missing=()
while read -r p; do [ -n "$p" ] && missing+=("$p"); done < <(missing_of "${pkgs[@]}")
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  install_pkgs "${missing[@]}"
fi
