#!/usr/bin/env python3
"""A Hugging Face tokenizer folder (tokenizer.json, tokenizer_config.json) from a llama.cpp
vocabulary GGUF of Llama 3's byte-level BPE (llama.cpp's models/ggml-vocab-llama-bpe.gguf:
the 128000 tokens and 280147 merges of Llama 3's tokenizer, plus its 256 special tokens), for
machines without the tokenizer files (tools/bench/serve_gpu_compare.sh feeds it to
random_llama_model.py, which writes it into both the lmx model and the GGUF). Only the
"llama-bpe" pre-tokenizer is known here; no BOS is added (as the npm llama3 tokenizer of
the CPU runs: llama-server adds its own).

  PYTHONPATH=<llama.cpp>/gguf-py python3 tools/bench/tokenizer_from_vocab_gguf.py \\
      <llama.cpp>/models/ggml-vocab-llama-bpe.gguf OUT_DIR"""
import json
import os
import sys

import gguf

# Llama 3's pre-tokenizer split (a regex of its tokenizer configuration).
LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def field(reader, key):
    f = reader.fields[key]
    if f.types[-1] == gguf.GGUFValueType.STRING:
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    return [int(f.parts[i][0]) for i in f.data]


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    r = gguf.GGUFReader(sys.argv[1])
    if field(r, "tokenizer.ggml.model") != ["gpt2"] or field(r, "tokenizer.ggml.pre") != ["llama-bpe"]:
        raise SystemExit(f"{sys.argv[1]}: not a llama-bpe (Llama 3) byte-level BPE vocabulary")
    tokens, types = field(r, "tokenizer.ggml.tokens"), field(r, "tokenizer.ggml.token_type")
    merges = field(r, "tokenizer.ggml.merges")
    control = int(gguf.TokenType.CONTROL)
    vocab = {t: i for i, (t, ty) in enumerate(zip(tokens, types)) if ty != control}
    added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True}
             for i, (t, ty) in enumerate(zip(tokens, types)) if ty == control]
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    tj = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT}, "behavior": "Isolated", "invert": False},
            byte_level]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": True, "vocab": vocab, "merges": merges},
    }
    bos = tokens[field(r, "tokenizer.ggml.bos_token_id")[0]]
    eos = tokens[field(r, "tokenizer.ggml.eos_token_id")[0]]
    config = {
        "added_tokens_decoder": {str(a["id"]): {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip",
                                                                  "single_word", "special")} for a in added},
        "bos_token": bos, "eos_token": eos, "clean_up_tokenization_spaces": True,
        "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast",
    }
    os.makedirs(sys.argv[2], exist_ok=True)
    with open(os.path.join(sys.argv[2], "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False)
    with open(os.path.join(sys.argv[2], "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
