#!/usr/bin/env python3
"""Random-weight embedders of real shapes for `lmx embed` vs llama.cpp's `llama-embedding`
(issue 17's benchmark), from one set of weights:

  OUT/lmx/         a sentence-transformers folder (config.json, model.safetensors f32,
                   the all-MiniLM-L6-v2 tokenizer files, mean pooling, Normalize)
  OUT/model.gguf   the same weights (f32) as a llama.cpp GGUF ("bert", or "nomic-bert" for
                   --shape nomic) with mean pooling and the same WordPiece vocabulary (taken
                   from llama.cpp's bert-bge vocab GGUF, checked equal to the tokenizer.json
                   vocabulary)
  OUT/sentences.txt  N lines of random whole-word vocabulary entries, 16-256 tokens each
                   with [CLS] and [SEP] (every word is one token in both tokenizers)

Shapes: minilm (all-MiniLM-L6-v2), bge-base (bge-base-en-v1.5), both BERT; nomic
(nomic-embed-text-v1.5: nomic_bert, rotary positions with base 1000, fused qkv, SwiGLU,
no linear biases, post-norm, vocabulary padded to 30528 rows, written with nomic's own
config keys and checkpoint names as its Hugging Face repository has them).

Run with numpy and llama.cpp's gguf-py:
    PYTHONPATH=/work/llama/src/gguf-py /usr/bin/python3 tools/bench/make_embed_bench.py \\
        --shape minilm --out /tmp/embed-bench/minilm
"""
import argparse
import json
import os
import re
import shutil
import struct

import numpy as np
import gguf

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../shared/data/tokenizers")
MINILM = os.path.join(SHARED, "all-MiniLM-L6-v2-tokenizer-and-config")
VOCAB_GGUF = os.path.join(SHARED, "llama.cpp-vocab-gguf/ggml-vocab-bert-bge.gguf")

SHAPES = {  # architecture, hidden, layers, heads, intermediate
    "minilm": ("bert", 384, 6, 12, 1536),          # all-MiniLM-L6-v2
    "bge-base": ("bert", 768, 12, 12, 3072),       # bge-base-en-v1.5
    "nomic": ("nomic_bert", 768, 12, 12, 3072),    # nomic-embed-text-v1.5
}
# Per architecture: embedding rows (nomic pads the 30522-entry vocabulary to 30528) and the
# context length (BERT's position table; nomic-embed-text v1.5 is trained for 2048 tokens).
VOCAB_ROWS = {"bert": 30522, "nomic_bert": 30528}
POSITIONS = {"bert": 512, "nomic_bert": 2048}
VOCAB, TYPES, EPS, ROPE_BASE = 30522, 2, 1e-12, 1000.0


def write_safetensors(tensors, path):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


class Random:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def mat(self, *shape):
        return (self.rng.standard_normal(shape) * 0.04).astype(np.float32)

    def vec(self, n, base=0.0):
        return (base + self.rng.standard_normal(n) * 0.02).astype(np.float32)


def random_bert(hidden, layers, inter, seed):
    """HF BertModel names -> f32 arrays (Linear weights [out, in])."""
    r = Random(seed)
    mat, vec = r.mat, r.vec
    w = {"embeddings.word_embeddings.weight": mat(VOCAB_ROWS["bert"], hidden),
         "embeddings.position_embeddings.weight": mat(POSITIONS["bert"], hidden),
         "embeddings.token_type_embeddings.weight": mat(TYPES, hidden),
         "embeddings.LayerNorm.weight": vec(hidden, 1.0), "embeddings.LayerNorm.bias": vec(hidden)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for part in ("query", "key", "value"):
            w[p + f"attention.self.{part}.weight"] = mat(hidden, hidden)
            w[p + f"attention.self.{part}.bias"] = vec(hidden)
        w[p + "attention.output.dense.weight"] = mat(hidden, hidden)
        w[p + "attention.output.dense.bias"] = vec(hidden)
        w[p + "attention.output.LayerNorm.weight"] = vec(hidden, 1.0)
        w[p + "attention.output.LayerNorm.bias"] = vec(hidden)
        w[p + "intermediate.dense.weight"] = mat(inter, hidden)
        w[p + "intermediate.dense.bias"] = vec(inter)
        w[p + "output.dense.weight"] = mat(hidden, inter)
        w[p + "output.dense.bias"] = vec(hidden)
        w[p + "output.LayerNorm.weight"] = vec(hidden, 1.0)
        w[p + "output.LayerNorm.bias"] = vec(hidden)
    return w


def random_nomic(hidden, layers, inter, seed):
    """nomic-embed-text's checkpoint names -> f32 arrays: no position table (rotary), one
    fused [q | k | v] projection, SwiGLU fc2(fc11(x) * silu(fc12(x))), no linear biases."""
    r = Random(seed)
    mat, vec = r.mat, r.vec
    w = {"embeddings.word_embeddings.weight": mat(VOCAB_ROWS["nomic_bert"], hidden),
         "embeddings.token_type_embeddings.weight": mat(TYPES, hidden),
         "emb_ln.weight": vec(hidden, 1.0), "emb_ln.bias": vec(hidden)}
    for i in range(layers):
        p = f"encoder.layers.{i}."
        w[p + "attn.Wqkv.weight"] = mat(3 * hidden, hidden)
        w[p + "attn.out_proj.weight"] = mat(hidden, hidden)
        w[p + "norm1.weight"] = vec(hidden, 1.0)
        w[p + "norm1.bias"] = vec(hidden)
        w[p + "mlp.fc11.weight"] = mat(inter, hidden)
        w[p + "mlp.fc12.weight"] = mat(inter, hidden)
        w[p + "mlp.fc2.weight"] = mat(hidden, inter)
        w[p + "norm2.weight"] = vec(hidden, 1.0)
        w[p + "norm2.bias"] = vec(hidden)
    return w


# Checkpoint name -> llama.cpp name, per architecture: the whole-model tensors, then the
# layer ones (checkpoint "<layer prefix>N.<suffix>" -> "blk.N.<name>").
GGUF_NAMES = {
    "bert": ([("embeddings.word_embeddings.weight", "token_embd.weight"),
              ("embeddings.position_embeddings.weight", "position_embd.weight"),
              ("embeddings.token_type_embeddings.weight", "token_types.weight"),
              ("embeddings.LayerNorm.weight", "token_embd_norm.weight"),
              ("embeddings.LayerNorm.bias", "token_embd_norm.bias")],
             "encoder.layer.",
             [(f"{hf}.{kind}", f"{ll}.{kind}") for hf, ll in [
                 ("attention.self.query", "attn_q"), ("attention.self.key", "attn_k"),
                 ("attention.self.value", "attn_v"), ("attention.output.dense", "attn_output"),
                 ("attention.output.LayerNorm", "attn_output_norm"), ("intermediate.dense", "ffn_up"),
                 ("output.dense", "ffn_down"), ("output.LayerNorm", "layer_output_norm")]
              for kind in ("weight", "bias")]),
    # llama.cpp's nomic-bert splits attn_qkv's rows as [q | k | v], as Wqkv is laid out, and
    # computes down(silu(gate(x)) * up(x)): fc12 (the silu side) is the gate, fc11 the up.
    "nomic_bert": ([("embeddings.word_embeddings.weight", "token_embd.weight"),
                    ("embeddings.token_type_embeddings.weight", "token_types.weight"),
                    ("emb_ln.weight", "token_embd_norm.weight"), ("emb_ln.bias", "token_embd_norm.bias")],
                   "encoder.layers.",
                   [("attn.Wqkv.weight", "attn_qkv.weight"), ("attn.out_proj.weight", "attn_output.weight"),
                    ("norm1.weight", "attn_output_norm.weight"), ("norm1.bias", "attn_output_norm.bias"),
                    ("mlp.fc11.weight", "ffn_up.weight"), ("mlp.fc12.weight", "ffn_gate.weight"),
                    ("mlp.fc2.weight", "ffn_down.weight"),
                    ("norm2.weight", "layer_output_norm.weight"), ("norm2.bias", "layer_output_norm.bias")]),
}


def gguf_tensors(arch, w, layers):
    whole, prefix, per_layer = GGUF_NAMES[arch]
    out = {ll: w[hf] for hf, ll in whole}
    for i in range(layers):
        for hf, ll in per_layer:
            out[f"blk.{i}.{ll}"] = w[f"{prefix}{i}.{hf}"]
    assert len(out) == len(w), "a checkpoint tensor has no llama.cpp name"
    return out


def vocab_from_gguf():
    r = gguf.GGUFReader(VOCAB_GGUF)
    f = r.fields
    tokens = [str(bytes(f["tokenizer.ggml.tokens"].parts[i]), "utf-8") for i in f["tokenizer.ggml.tokens"].data]
    types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
    return tokens, types


def hf_piece(t):
    """llama.cpp's BERT vocabulary marks a word start with U+2581 and writes continuations
    bare; HF's writes words bare and continuations with "##"."""
    if t.startswith("\u2581"):
        return t[1:]
    if t.startswith("[") and t.endswith("]"):
        return t
    return "##" + t


def write_gguf(path, arch, w, hidden, layers, heads, inter, tokens, types):
    rows = VOCAB_ROWS[arch]
    # Padding rows as llama.cpp's converter names them: unused, never produced by the tokenizer.
    tokens = tokens + [f"[PAD{i}]" for i in range(len(tokens), rows)]
    types = types + [int(gguf.TokenType.UNUSED)] * (rows - len(types))
    g = gguf.GGUFWriter(path, {"bert": "bert", "nomic_bert": "nomic-bert"}[arch])
    g.add_name("lmx-bench-random")
    g.add_context_length(POSITIONS[arch])
    g.add_embedding_length(hidden)
    g.add_feed_forward_length(inter)
    g.add_block_count(layers)
    g.add_head_count(heads)
    g.add_layer_norm_eps(EPS)
    g.add_causal_attention(False)
    g.add_pooling_type(gguf.PoolingType.MEAN)
    if arch == "nomic_bert":
        g.add_rope_freq_base(ROPE_BASE)
    g.add_file_type(gguf.LlamaFileType.ALL_F32)
    g.add_tokenizer_model("bert")
    g.add_tokenizer_pre("bert-bge")
    g.add_token_list(tokens)
    g.add_token_types(types)
    g.add_token_type_count(TYPES)
    g.add_unk_token_id(100)
    g.add_sep_token_id(102)
    g.add_pad_token_id(0)
    g.add_bos_token_id(101)  # [CLS]
    g.add_mask_token_id(103)
    for name, a in gguf_tensors(arch, w, layers).items():
        g.add_tensor(name, np.ascontiguousarray(a, dtype=np.float32))
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()


def model_config(arch, hidden, layers, heads, inter):
    if arch == "bert":
        with open(os.path.join(MINILM, "config.json")) as f:
            cfg = json.load(f)
        cfg.update(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                   intermediate_size=inter, max_position_embeddings=POSITIONS[arch], vocab_size=VOCAB_ROWS[arch])
        return cfg
    # nomic-embed-text-v1.5's config.json keys (its remote-code NomicBertModel).
    return {"architectures": ["NomicBertModel"], "model_type": "nomic_bert", "activation_function": "swiglu",
            "n_embd": hidden, "n_layer": layers, "n_head": heads, "n_inner": inter,
            "n_positions": POSITIONS[arch], "vocab_size": VOCAB_ROWS[arch], "type_vocab_size": TYPES,
            "layer_norm_epsilon": EPS, "rotary_emb_base": ROPE_BASE, "rotary_emb_fraction": 1.0,
            "rotary_emb_interleaved": False, "rotary_emb_scale_base": None, "rotary_scaling_factor": None,
            "qkv_proj_bias": False, "mlp_fc1_bias": False, "mlp_fc2_bias": False, "prenorm": False,
            "causal": False, "scale_attn_weights": True, "pad_token_id": 0, "torch_dtype": "float32"}


def write_lmx_folder(folder, arch, w, hidden, layers, heads, inter):
    os.makedirs(os.path.join(folder, "1_Pooling"), exist_ok=True)
    os.makedirs(os.path.join(folder, "2_Normalize"), exist_ok=True)
    cfg = model_config(arch, hidden, layers, heads, inter)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    for name in ("modules.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                 "config_sentence_transformers.json"):
        shutil.copy(os.path.join(MINILM, name), folder)
    with open(os.path.join(MINILM, "1_Pooling", "config.json")) as f:
        pool = json.load(f)
    pool["word_embedding_dimension"] = hidden
    with open(os.path.join(folder, "1_Pooling", "config.json"), "w") as f:
        json.dump(pool, f, indent=2)
    with open(os.path.join(folder, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": POSITIONS[arch], "do_lower_case": False}, f)
    write_safetensors(w, os.path.join(folder, "model.safetensors"))


def write_sentences(path, tokens, n, seed):
    """Whole lowercase words of the vocabulary (one WordPiece token each), 14-254 words."""
    words = [p for p in map(hf_piece, tokens[1000:]) if re.fullmatch(r"[a-z]{2,}", p)]
    rng = np.random.default_rng(seed)
    lengths = rng.integers(16, 257, size=n)
    with open(path, "w") as f:
        for L in lengths:
            f.write(" ".join(words[i] for i in rng.integers(0, len(words), size=int(L) - 2)) + "\n")
    return int(lengths.sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", choices=sorted(SHAPES), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=17)
    a = ap.parse_args()
    arch, hidden, layers, heads, inter = SHAPES[a.shape]
    tokens, types = vocab_from_gguf()
    with open(os.path.join(MINILM, "tokenizer.json")) as f:
        vocab = json.load(f)["model"]["vocab"]
    assert len(tokens) == VOCAB and all(vocab.get(hf_piece(t)) == i for i, t in enumerate(tokens)), \
        "vocabularies differ"
    os.makedirs(a.out, exist_ok=True)
    w = {"bert": random_bert, "nomic_bert": random_nomic}[arch](hidden, layers, inter, a.seed)
    write_lmx_folder(os.path.join(a.out, "lmx"), arch, w, hidden, layers, heads, inter)
    write_gguf(os.path.join(a.out, "model.gguf"), arch, w, hidden, layers, heads, inter, tokens, types)
    total = write_sentences(os.path.join(a.out, "sentences.txt"), tokens, a.sentences, a.seed + 1)
    print(f"wrote {a.out}: {a.shape} ({hidden} hidden, {layers} layers), {a.sentences} sentences, {total} tokens")


if __name__ == "__main__":
    main()
