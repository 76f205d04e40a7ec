#!/usr/bin/env bash
# The main job (README's first command). Until generation lands, it runs the kernel
# benchmark report; the CLI issue replaces it with `lmx generate` on a real model.
set -euo pipefail
build=${1:-build}
exec "$build/apps/lmx/lmx" bench kernels
