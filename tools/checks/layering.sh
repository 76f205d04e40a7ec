#!/usr/bin/env bash
# The layering DESIGN.md draws, checked on the sources: nothing above lmx/core includes a
# backend (lmx/backend/*), nor do core's op front ends; the text layers include no tensor
# code. Prints each offending line and exits 1, or prints one line and exits 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
bad=0
above_core=(lmx/core/ops lmx/nn lmx/models lmx/generate lmx/io lmx/train lmx/server lmx/vision apps examples)
for d in "${above_core[@]}"; do
  [ -d "$d" ] || continue
  if grep -rn --include='*.h' --include='*.cpp' '#include "lmx/backend/' "$d"; then bad=1; fi
done
for d in lmx/tokenizer lmx/chat lmx/base; do
  if grep -rn --include='*.h' --include='*.cpp' -E '#include "lmx/(core|backend|nn|models|generate)/' "$d"; then bad=1; fi
done
if [ "$bad" -ne 0 ]; then
  echo "layering: the includes above cross the layers of DESIGN.md"
  exit 1
fi
echo "layering: no backend include above lmx/core, no tensor include in the text layers"
