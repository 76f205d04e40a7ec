#!/usr/bin/env python3
"""Random-weight F16 GGUF of an HF config's shape, for llama-bench comparisons (issue 16's
Llama-3.2-1B and Qwen2.5-0.5B shapes on the GPU, issue 20's
LFM2 and Qwen3-Next shapes, issue 19's Llama 4, gpt-oss and DeepSeek-V3 MoE
shapes): tensor names and shapes as llama.cpp loads them (its `src/models/<arch>.cpp`),
values random (llama-bench feeds random token ids, so only the shapes and the work per
token matter).

Usage: PYTHONPATH=<llama.cpp>/gguf-py /usr/bin/python3 random_gguf.py CONFIG.json OUT.gguf VOCAB.gguf
VOCAB.gguf: a llama.cpp test vocabulary (ggml-vocab-gpt-2.gguf), padded to the config's size.
Numpy shapes are (out, in): ggml's {in, out} reversed."""
import json
import sys

import gguf
import numpy as np

rng = np.random.default_rng(0)


def field_list(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]) if f.types[-1] == gguf.GGUFValueType.STRING else int(f.parts[i][0]) for i in f.data]


def vocabulary(w, vocab_file, size):
    r = gguf.GGUFReader(vocab_file)
    toks = field_list(r, "tokenizer.ggml.tokens")
    types = field_list(r, "tokenizer.ggml.token_type")
    assert len(toks) <= size
    for i in range(len(toks), size):
        toks.append(f"[PAD{i}]".encode())
        types.append(int(gguf.TokenType.USER_DEFINED))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(toks)
    w.add_token_types(types)
    w.add_token_merges(field_list(r, "tokenizer.ggml.merges"))
    w.add_bos_token_id(0)
    w.add_eos_token_id(0)


class Tensors:
    def __init__(self, w):
        self.w = w

    def mat(self, name, *shape, f32=False):  # f32: convolution weights (ggml's ssm_conv reads f32)
        a = rng.standard_normal(shape, dtype=np.float32) * 0.02
        self.w.add_tensor(name, a if f32 else a.astype(np.float16))

    def vec(self, name, n, value=1.0):
        self.w.add_tensor(name, np.full(n, value, dtype=np.float32))


def common(w, cfg, eps_key):
    w.add_context_length(4096)
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_rope_freq_base(float(cfg["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg[eps_key]))
    w.add_vocab_size(cfg["vocab_size"])
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)


def lfm2(w, cfg, t):
    H, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = H // nh
    ff = cfg["block_ff_dim"]
    if cfg.get("block_auto_adjust_ff_dim", True):
        ff = int(2 * ff / 3)
        ff = int(cfg.get("block_ffn_dim_multiplier", 1.0) * ff)
        m = cfg.get("block_multiple_of", 256)
        ff = m * ((ff + m - 1) // m)
    kinds = cfg["layer_types"]
    common(w, cfg, "norm_eps")
    w.add_head_count_kv([nkv if k != "conv" else 0 for k in kinds])
    w.add_feed_forward_length(ff)
    w.add_shortconv_l_cache(cfg["conv_L_cache"])
    w.add_rope_dimension_count(hd)
    t.mat("token_embd.weight", V, H)
    t.vec("token_embd_norm.weight", H)
    for i, kind in enumerate(kinds):
        p = f"blk.{i}."
        t.vec(p + "attn_norm.weight", H)
        t.vec(p + "ffn_norm.weight", H)
        t.mat(p + "ffn_gate.weight", ff, H)
        t.mat(p + "ffn_up.weight", ff, H)
        t.mat(p + "ffn_down.weight", H, ff)
        if kind == "conv":
            t.mat(p + "shortconv.conv.weight", H, cfg["conv_L_cache"], f32=True)
            t.mat(p + "shortconv.in_proj.weight", 3 * H, H)
            t.mat(p + "shortconv.out_proj.weight", H, H)
        else:
            t.vec(p + "attn_q_norm.weight", hd)
            t.vec(p + "attn_k_norm.weight", hd)
            t.mat(p + "attn_q.weight", nh * hd, H)
            t.mat(p + "attn_k.weight", nkv * hd, H)
            t.mat(p + "attn_v.weight", nkv * hd, H)
            t.mat(p + "attn_output.weight", H, nh * hd)


def qwen3next(w, cfg, t):
    H, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    E, k, fe, fs = cfg["num_experts"], cfg["num_experts_per_tok"], cfg["moe_intermediate_size"], \
        cfg["shared_expert_intermediate_size"]
    kh, vh, kd, vd = cfg["linear_num_key_heads"], cfg["linear_num_value_heads"], cfg["linear_key_head_dim"], \
        cfg["linear_value_head_dim"]
    assert kd == vd, "llama.cpp's qwen3next takes one head size (ssm_state_size) for keys and values"
    conv = cfg["linear_conv_kernel_dim"]
    interval = cfg.get("full_attention_interval", 4)
    common(w, cfg, "rms_norm_eps")
    w.add_head_count_kv(nkv)
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_expert_count(E)
    w.add_expert_used_count(k)
    w.add_expert_feed_forward_length(fe)
    w.add_expert_shared_feed_forward_length(fs)
    w.add_ssm_conv_kernel(conv)
    w.add_ssm_state_size(kd)
    w.add_ssm_group_count(kh)
    w.add_ssm_time_step_rank(vh)
    w.add_ssm_inner_size(vd * vh)
    w.add_full_attention_interval(interval)
    w.add_rope_dimension_count(int(hd * cfg.get("partial_rotary_factor", 0.25)))
    key_dim, value_dim = kd * kh, vd * vh
    t.mat("token_embd.weight", V, H)
    t.vec("output_norm.weight", H)
    t.mat("output.weight", V, H)
    for i in range(L):
        p = f"blk.{i}."
        t.vec(p + "attn_norm.weight", H)
        t.vec(p + "post_attention_norm.weight", H)
        if (i + 1) % interval == 0:
            t.mat(p + "attn_q.weight", nh * hd * 2, H)
            t.mat(p + "attn_k.weight", nkv * hd, H)
            t.mat(p + "attn_v.weight", nkv * hd, H)
            t.mat(p + "attn_output.weight", H, nh * hd)
            t.vec(p + "attn_q_norm.weight", hd)
            t.vec(p + "attn_k_norm.weight", hd)
        else:
            t.mat(p + "attn_qkv.weight", 2 * key_dim + value_dim, H)
            t.mat(p + "attn_gate.weight", value_dim, H)
            t.mat(p + "ssm_conv1d.weight", 2 * key_dim + value_dim, conv, f32=True)
            t.vec(p + "ssm_dt.bias", vh, 0.5)
            t.vec(p + "ssm_a", vh, -1.0)
            t.mat(p + "ssm_ba.weight", 2 * vh, H)
            t.vec(p + "ssm_norm.weight", vd)
            t.mat(p + "ssm_out.weight", H, value_dim)
        t.mat(p + "ffn_gate_inp.weight", E, H)
        t.mat(p + "ffn_gate_exps.weight", E, fe, H)
        t.mat(p + "ffn_up_exps.weight", E, fe, H)
        t.mat(p + "ffn_down_exps.weight", E, H, fe)
        t.vec(p + "ffn_gate_inp_shexp.weight", H, 0.0)
        t.mat(p + "ffn_gate_shexp.weight", fs, H)
        t.mat(p + "ffn_up_shexp.weight", fs, H)
        t.mat(p + "ffn_down_shexp.weight", H, fs)


def moe_header(w, cfg, experts, used, expert_ff):
    """Metadata of an attention + MoE model with full-size rotary heads."""
    common(w, cfg, "rms_norm_eps")
    hd = cfg["head_dim"]
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(hd)
    w.add_value_length(hd)
    w.add_rope_dimension_count(hd)
    w.add_expert_count(experts)
    w.add_expert_used_count(used)
    w.add_expert_feed_forward_length(expert_ff)


def untied_embeddings(t, V, H):
    t.mat("token_embd.weight", V, H)
    t.vec("output_norm.weight", H)
    t.mat("output.weight", V, H)


def attention_block(t, p, H, nh, nkv, hd, biases=False):
    """A layer's norms and q / k / v / o projections as llama.cpp names them."""
    t.vec(p + "attn_norm.weight", H)
    t.vec(p + "ffn_norm.weight", H)
    t.mat(p + "attn_q.weight", nh * hd, H)
    t.mat(p + "attn_k.weight", nkv * hd, H)
    t.mat(p + "attn_v.weight", nkv * hd, H)
    if biases:
        t.vec(p + "attn_q.bias", nh * hd, 0.0)
        t.vec(p + "attn_k.bias", nkv * hd, 0.0)
        t.vec(p + "attn_v.bias", nkv * hd, 0.0)
    t.mat(p + "attn_output.weight", H, nh * hd)


def llama4(w, cfg, t):
    H, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    E, k, fe, fd = cfg["num_local_experts"], cfg["num_experts_per_tok"], cfg["intermediate_size"], \
        cfg["intermediate_size_mlp"]
    step = cfg.get("interleave_moe_layer_step", 1)
    # llama.cpp takes NoPE on every 4th layer and chunked attention on the others.
    assert cfg.get("no_rope_layer_interval", 4) == 4 and "no_rope_layers" not in cfg
    assert not cfg.get("tie_word_embeddings", False)
    moe_header(w, cfg, E, k, fe)
    w.add_feed_forward_length(fd)
    w.add_interleave_moe_layer_step(step)
    untied_embeddings(t, V, H)
    for i in range(L):
        p = f"blk.{i}."
        attention_block(t, p, H, nh, nkv, hd)
        if (i + 1) % step == 0:
            t.mat(p + "ffn_gate_inp.weight", E, H)
            t.mat(p + "ffn_gate_exps.weight", E, fe, H)
            t.mat(p + "ffn_up_exps.weight", E, fe, H)
            t.mat(p + "ffn_down_exps.weight", E, H, fe)
            t.mat(p + "ffn_gate_shexp.weight", fe, H)
            t.mat(p + "ffn_up_shexp.weight", fe, H)
            t.mat(p + "ffn_down_shexp.weight", H, fe)
        else:
            t.mat(p + "ffn_gate.weight", fd, H)
            t.mat(p + "ffn_up.weight", fd, H)
            t.mat(p + "ffn_down.weight", H, fd)


def gpt_oss(w, cfg, t):
    H, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    nh, nkv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    E, k, fe = cfg["num_local_experts"], cfg["num_experts_per_tok"], cfg["intermediate_size"]
    # llama.cpp alternates sliding-window (even) and full (odd) layers, as the default here.
    assert "layer_types" not in cfg and not cfg.get("tie_word_embeddings", False)
    moe_header(w, cfg, E, k, fe)
    w.add_sliding_window(cfg["sliding_window"])
    w.add_feed_forward_length(fe)
    untied_embeddings(t, V, H)
    for i in range(L):
        p = f"blk.{i}."
        t.vec(p + "attn_norm.weight", H)
        t.vec(p + "post_attention_norm.weight", H)
        for name, rows in (("attn_q", nh * hd), ("attn_k", nkv * hd), ("attn_v", nkv * hd)):
            t.mat(p + name + ".weight", rows, H)
            t.vec(p + name + ".bias", rows, 0.0)
        t.mat(p + "attn_output.weight", H, nh * hd)
        t.vec(p + "attn_output.bias", H, 0.0)
        t.vec(p + "attn_sinks.weight", nh, 0.0)
        t.mat(p + "ffn_gate_inp.weight", E, H)
        t.vec(p + "ffn_gate_inp.bias", E, 0.0)
        for name, shape in (("ffn_gate_exps", (E, fe, H)), ("ffn_up_exps", (E, fe, H)), ("ffn_down_exps", (E, H, fe))):
            t.mat(p + name + ".weight", *shape)
            t.w.add_tensor(p + name + ".bias", np.zeros(shape[:2], dtype=np.float32))


def deepseek2(w, cfg, t):
    """DeepSeek-V3 as llama.cpp's deepseek2 loads it: multi-head latent attention stored as
    MQA over the compressed KV (key length kv_lora + rope, value length kv_lora, one KV
    head) with kv_b_proj split per head into attn_k_b (transposed) and attn_v_b, dense
    leading layers, then sigmoid-scored routed experts (with exp_probs_b, the correction
    bias) in groups plus shared experts."""
    H, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    nh, ql, kvl = cfg["num_attention_heads"], cfg.get("q_lora_rank"), cfg["kv_lora_rank"]
    nope, rope, vd = cfg["qk_nope_head_dim"], cfg["qk_rope_head_dim"], cfg["v_head_dim"]
    E, k, fe, ns = cfg["n_routed_experts"], cfg["num_experts_per_tok"], cfg["moe_intermediate_size"], \
        cfg["n_shared_experts"]
    dense, ff = cfg.get("first_k_dense_replace", 0), cfg["intermediate_size"]
    assert cfg.get("moe_layer_freq", 1) == 1 and cfg.get("scoring_func", "sigmoid") == "sigmoid"
    assert "rope_scaling" not in cfg and not cfg.get("tie_word_embeddings", False)
    common(w, cfg, "rms_norm_eps")
    w.add_head_count_kv(1)
    w.add_key_length(kvl + rope)
    w.add_value_length(kvl)
    w.add_key_length_mla(nope + rope)
    w.add_value_length_mla(vd)
    w.add_rope_dimension_count(rope)
    if ql:
        w.add_q_lora_rank(ql)
    w.add_kv_lora_rank(kvl)
    w.add_leading_dense_block_count(dense)
    w.add_feed_forward_length(ff)
    w.add_expert_feed_forward_length(fe)
    w.add_expert_count(E)
    w.add_expert_used_count(k)
    w.add_expert_shared_count(ns)
    w.add_expert_group_count(cfg.get("n_group", 1))
    w.add_expert_group_used_count(cfg.get("topk_group", 1))
    w.add_expert_weights_scale(float(cfg.get("routed_scaling_factor", 1.0)))
    w.add_expert_weights_norm(bool(cfg.get("norm_topk_prob", False)))
    w.add_expert_gating_func(gguf.ExpertGatingFuncType.SIGMOID)
    untied_embeddings(t, V, H)
    for i in range(L):
        p = f"blk.{i}."
        t.vec(p + "attn_norm.weight", H)
        t.vec(p + "ffn_norm.weight", H)
        if ql:
            t.mat(p + "attn_q_a.weight", ql, H)
            t.vec(p + "attn_q_a_norm.weight", ql)
            t.mat(p + "attn_q_b.weight", nh * (nope + rope), ql)
        else:
            t.mat(p + "attn_q.weight", nh * (nope + rope), H)
        t.mat(p + "attn_kv_a_mqa.weight", kvl + rope, H)
        t.vec(p + "attn_kv_a_norm.weight", kvl)
        t.mat(p + "attn_k_b.weight", nh, kvl, nope)
        t.mat(p + "attn_v_b.weight", nh, vd, kvl)
        t.mat(p + "attn_output.weight", H, nh * vd)
        if i < dense:
            t.mat(p + "ffn_gate.weight", ff, H)
            t.mat(p + "ffn_up.weight", ff, H)
            t.mat(p + "ffn_down.weight", H, ff)
            continue
        t.mat(p + "ffn_gate_inp.weight", E, H)
        t.vec(p + "exp_probs_b.bias", E, 0.0)
        t.mat(p + "ffn_gate_exps.weight", E, fe, H)
        t.mat(p + "ffn_up_exps.weight", E, fe, H)
        t.mat(p + "ffn_down_exps.weight", E, H, fe)
        t.mat(p + "ffn_gate_shexp.weight", fe * ns, H)
        t.mat(p + "ffn_up_shexp.weight", fe * ns, H)
        t.mat(p + "ffn_down_shexp.weight", H, fe * ns)


def llama(w, cfg, t):
    """Llama-3.2 / Qwen2.5 dense shapes (issue 16's GPU comparison); qwen2 adds q/k/v biases."""
    H, L, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = cfg.get("head_dim", H // nh)
    ff = cfg["intermediate_size"]
    common(w, cfg, "rms_norm_eps")
    w.add_head_count_kv(nkv)
    w.add_feed_forward_length(ff)
    w.add_rope_dimension_count(hd)
    if cfg.get("tie_word_embeddings", False):
        t.mat("token_embd.weight", V, H)
        t.vec("output_norm.weight", H)
    else:
        untied_embeddings(t, V, H)
    for i in range(L):
        p = f"blk.{i}."
        attention_block(t, p, H, nh, nkv, hd, biases=cfg["model_type"] == "qwen2")
        t.mat(p + "ffn_gate.weight", ff, H)
        t.mat(p + "ffn_up.weight", ff, H)
        t.mat(p + "ffn_down.weight", H, ff)


ARCHS = {"llama": ("llama", llama), "qwen2": ("qwen2", llama),
         "lfm2": ("lfm2", lfm2), "qwen3_next": ("qwen3next", qwen3next),
         "llama4_text": ("llama4", llama4),
         "gpt_oss": ("gpt-oss", gpt_oss),
         "deepseek_v3": ("deepseek2", deepseek2)}


def main(cfg_path, out, vocab_file):
    cfg = json.load(open(cfg_path))
    arch, fill = ARCHS[cfg["model_type"]]
    w = gguf.GGUFWriter(out, arch)
    vocabulary(w, vocab_file, cfg["vocab_size"])
    fill(w, cfg, Tensors(w))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
