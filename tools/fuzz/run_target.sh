#!/usr/bin/env bash
# Runs one libFuzzer target over its seeds and committed regressions:
#   tools/fuzz/run_target.sh BINARY NAME CORPUS_ROOT SECONDS [--smoke] [libFuzzer flags...]
# New inputs go to CORPUS_ROOT/work/NAME (the seeds in CORPUS_ROOT/seeds/NAME stay as
# built); with --smoke (the ctest runs) to a temporary folder that is removed, so that a
# smoke run only replays the seeds and regressions and then mutates for SECONDS.
# A crash is written to CORPUS_ROOT/crashes/NAME and the script fails.
set -euo pipefail
bin=$1 name=$2 root=$3 seconds=$4
shift 4
seeds=$root/seeds/$name work=$root/work/$name crashes=$root/crashes/$name
if [ "${1:-}" = --smoke ]; then
  shift
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
fi
mkdir -p "$work" "$crashes" "$seeds"
dirs=("$work" "$seeds")
regressions=tests/fuzz/regressions/$name
[ -d "$regressions" ] && dirs+=("$regressions")
# -timeout: one input slower than this is a hang; -rss_limit_mb: more memory is a finding.
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=131072 \
  -print_final_stats=1 -artifact_prefix="$crashes/" "$@" "${dirs[@]}"
