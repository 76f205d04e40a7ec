#!/usr/bin/env python3
"""One set of random weights of a Llama config's shape, written twice: a Hugging Face
folder (config.json, F16 model.safetensors, the given tokenizer) for `lmx convert`, and
optionally an F16 GGUF of the same weights and tokenizer for llama.cpp (llama-quantize,
llama-server), so both servers see the same shapes and tokenize prompts the same way.
Speed does not depend on the values; the GGUF's q/k rows are not permuted the way
llama.cpp's converter permutes them and it has no llama3 rope-frequency tensor, so the two
models do not compute the same function (no output is compared, only timed).

  /usr/bin/python3 tools/bench/random_llama_model.py ../shared/data/configs/llama-3.2-1b.json \
      .cache/npm-tokenizers/llama3 /tmp/llama1b-hf [--gguf /tmp/llama1b-f16.gguf]

--gguf needs llama.cpp's gguf-py on PYTHONPATH. numpy only otherwise (Debian's python3)."""
import argparse
import json
import os
import shutil
import struct

import numpy as np


def tensors(cfg, rng):
    """(HF name, GGUF name, array) in order; norms f32 ones, matrices f16 N(0, 0.02)."""
    H, F, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    nh, nkv, V = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["vocab_size"]
    hd = cfg.get("head_dim", H // nh)

    def mat(rows, cols):
        return (rng.standard_normal((rows, cols), dtype=np.float32) * 0.02).astype(np.float16)

    yield "model.embed_tokens.weight", "token_embd.weight", mat(V, H)
    for l in range(L):
        hf, gg = f"model.layers.{l}.", f"blk.{l}."
        yield hf + "input_layernorm.weight", gg + "attn_norm.weight", np.ones(H, np.float32)
        yield hf + "self_attn.q_proj.weight", gg + "attn_q.weight", mat(nh * hd, H)
        yield hf + "self_attn.k_proj.weight", gg + "attn_k.weight", mat(nkv * hd, H)
        yield hf + "self_attn.v_proj.weight", gg + "attn_v.weight", mat(nkv * hd, H)
        yield hf + "self_attn.o_proj.weight", gg + "attn_output.weight", mat(H, nh * hd)
        yield hf + "post_attention_layernorm.weight", gg + "ffn_norm.weight", np.ones(H, np.float32)
        yield hf + "mlp.gate_proj.weight", gg + "ffn_gate.weight", mat(F, H)
        yield hf + "mlp.up_proj.weight", gg + "ffn_up.weight", mat(F, H)
        yield hf + "mlp.down_proj.weight", gg + "ffn_down.weight", mat(H, F)
    yield "model.norm.weight", "output_norm.weight", np.ones(H, np.float32)
    if not cfg.get("tie_word_embeddings", False):
        yield "lm_head.weight", "output.weight", mat(V, H)


def write_safetensors(path, named):
    dtypes = {np.dtype(np.float16): "F16", np.dtype(np.float32): "F32"}
    header, offset = {}, 0
    for name, a in named:
        header[name] = {"dtype": dtypes[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for _, a in named:
            f.write(np.ascontiguousarray(a).tobytes())


def write_gguf(path, cfg, tok_dir, named):
    import gguf  # llama.cpp's gguf-py
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    w = gguf.GGUFWriter(path, "llama")
    w.add_context_length(8192)
    w.add_embedding_length(H)
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(nh)
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_rope_dimension_count(cfg.get("head_dim", H // nh))
    w.add_rope_freq_base(float(cfg["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    # The tokenizer.json's byte-level BPE as GGUF's "gpt2" model with Llama 3's pre-tokenizer.
    tj = json.load(open(os.path.join(tok_dir, "tokenizer.json")))
    V = cfg["vocab_size"]
    toks = [f"[PAD{i}]" for i in range(V)]
    types = [int(gguf.TokenType.UNUSED)] * V
    for t, i in tj["model"]["vocab"].items():
        toks[i], types[i] = t, int(gguf.TokenType.NORMAL)
    for a in tj["added_tokens"]:
        toks[a["id"]] = a["content"]
        types[a["id"]] = int(gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tj["model"]["merges"]]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("llama-bpe")
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_add_bos_token(True)
    for gname, a in named:
        w.add_tensor(gname, a)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config")
    ap.add_argument("tokenizer_dir", help="a folder with tokenizer.json and tokenizer_config.json")
    ap.add_argument("hf_out")
    ap.add_argument("--gguf", help="also write this F16 GGUF (needs gguf-py)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    if cfg.get("model_type") != "llama":
        raise SystemExit(f"{a.config}: model_type must be llama")
    named = list(tensors(cfg, np.random.default_rng(a.seed)))
    os.makedirs(a.hf_out, exist_ok=True)
    cfg = dict(cfg, torch_dtype="float16")
    json.dump(cfg, open(os.path.join(a.hf_out, "config.json"), "w"), indent=1)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(a.tokenizer_dir, f), a.hf_out)
    write_safetensors(os.path.join(a.hf_out, "model.safetensors"), [(h, t) for h, _, t in named])
    if a.gguf:
        write_gguf(a.gguf, cfg, a.tokenizer_dir, [(g, t) for _, g, t in named])


if __name__ == "__main__":
    main()
