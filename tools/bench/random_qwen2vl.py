#!/usr/bin/env python3
"""A random-weight Qwen2-VL of moderate size written twice from the same arrays: a Hugging
Face folder (config.json, preprocessor_config.json, model.safetensors: what lmx loads) and
llama.cpp's pair of GGUF files (text model, arch qwen2vl, and mmproj, projector
qwen2vl_merger), for the CPU comparison of lmx against llama-mtmd-cli
(tools/bench/vlm_llama_compare.sh). numpy and llama.cpp's gguf-py only:
    PYTHONPATH=/work/llama/src/gguf-py python3 tools/bench/random_qwen2vl.py OUT_DIR
The GGUF tensor names come from gguf-py's own name map; the two Conv2D halves of the
temporal patch convolution and the q / k / v thirds of the fused qkv are llama.cpp's layout.
The vocabulary: 248 byte-level tokens, one merge, and Qwen's special tokens at 248-255.
"""
import json
import os
import struct
import sys

import numpy as np
import gguf

V = dict(depth=4, embed_dim=320, num_heads=5, mlp_ratio=4, patch_size=14, temporal_patch_size=2,
         spatial_merge_size=2, in_channels=3, hidden_act="quick_gelu")
T = dict(hidden_size=512, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4,
         vocab_size=256, rms_norm_eps=1e-6, rope_theta=1000000.0, mrope_section=[8, 12, 12])
SPECIALS = {"ĠĠ": 248, "<|endoftext|>": 249, "<|image_pad|>": 250, "<|video_pad|>": 251,
            "<|vision_start|>": 252, "<|vision_end|>": 253, "<|im_start|>": 254, "<|im_end|>": 255}
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def byte_level_chars():
    """GPT-2's byte-to-unicode table (printable bytes stand for themselves)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def weights(rng):
    e, f, h = V["embed_dim"], V["embed_dim"] * V["mlp_ratio"], T["hidden_size"]
    p, tp = V["patch_size"], V["temporal_patch_size"]
    merged = e * V["spatial_merge_size"] ** 2
    w = {}

    def r(*shape, scale=0.05, offset=0.0):
        return (rng.standard_normal(shape) * scale + offset).astype(np.float32)

    w["model.visual.patch_embed.proj.weight"] = r(e, 3, tp, p, p, scale=0.02)
    for i in range(V["depth"]):
        b = "model.visual.blocks.%d." % i
        w[b + "norm1.weight"], w[b + "norm1.bias"] = r(e, scale=0.1, offset=1.0), r(e, scale=0.02)
        w[b + "norm2.weight"], w[b + "norm2.bias"] = r(e, scale=0.1, offset=1.0), r(e, scale=0.02)
        w[b + "attn.qkv.weight"], w[b + "attn.qkv.bias"] = r(3 * e, e), r(3 * e, scale=0.02)
        w[b + "attn.proj.weight"], w[b + "attn.proj.bias"] = r(e, e), r(e, scale=0.02)
        w[b + "mlp.fc1.weight"], w[b + "mlp.fc1.bias"] = r(f, e), r(f, scale=0.02)
        w[b + "mlp.fc2.weight"], w[b + "mlp.fc2.bias"] = r(e, f), r(e, scale=0.02)
    w["model.visual.merger.ln_q.weight"], w["model.visual.merger.ln_q.bias"] = r(e, scale=0.1, offset=1.0), r(e, scale=0.02)
    w["model.visual.merger.mlp.0.weight"], w["model.visual.merger.mlp.0.bias"] = r(merged, merged), r(merged, scale=0.02)
    w["model.visual.merger.mlp.2.weight"], w["model.visual.merger.mlp.2.bias"] = r(h, merged), r(h, scale=0.02)
    hd = h // T["num_attention_heads"]
    kv = hd * T["num_key_value_heads"]
    w["model.language_model.embed_tokens.weight"] = r(T["vocab_size"], h)
    for i in range(T["num_hidden_layers"]):
        b = "model.language_model.layers.%d." % i
        w[b + "self_attn.q_proj.weight"], w[b + "self_attn.q_proj.bias"] = r(h, h), r(h, scale=0.02)
        w[b + "self_attn.k_proj.weight"], w[b + "self_attn.k_proj.bias"] = r(kv, h), r(kv, scale=0.02)
        w[b + "self_attn.v_proj.weight"], w[b + "self_attn.v_proj.bias"] = r(kv, h), r(kv, scale=0.02)
        w[b + "self_attn.o_proj.weight"] = r(h, h)
        w[b + "mlp.gate_proj.weight"] = r(T["intermediate_size"], h)
        w[b + "mlp.up_proj.weight"] = r(T["intermediate_size"], h)
        w[b + "mlp.down_proj.weight"] = r(h, T["intermediate_size"])
        w[b + "input_layernorm.weight"] = r(h, scale=0.1, offset=1.0)
        w[b + "post_attention_layernorm.weight"] = r(h, scale=0.1, offset=1.0)
    w["model.language_model.norm.weight"] = r(h, scale=0.1, offset=1.0)
    w["lm_head.weight"] = r(T["vocab_size"], h)
    return w


def write_safetensors(path, tensors):
    header, offset = {}, 0
    for k, v in tensors.items():
        header[k] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + v.nbytes]}
        offset += v.nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for v in tensors.values():
            f.write(np.ascontiguousarray(v).tobytes())


def hf_folder(out, w):
    os.makedirs(out, exist_ok=True)
    text = dict(model_type="qwen2_vl_text", hidden_size=T["hidden_size"], intermediate_size=T["intermediate_size"],
                num_hidden_layers=T["num_hidden_layers"], num_attention_heads=T["num_attention_heads"],
                num_key_value_heads=T["num_key_value_heads"], vocab_size=T["vocab_size"], rms_norm_eps=T["rms_norm_eps"],
                max_position_embeddings=4096, hidden_act="silu", tie_word_embeddings=False, bos_token_id=249,
                eos_token_id=249, rope_parameters={"rope_type": "default", "rope_theta": T["rope_theta"],
                                                   "mrope_section": T["mrope_section"]})
    vision = dict(V, hidden_size=T["hidden_size"], model_type="qwen2_vl_vision")
    cfg = dict(architectures=["Qwen2VLForConditionalGeneration"], model_type="qwen2_vl", text_config=text,
               vision_config=vision, image_token_id=250, video_token_id=251, vision_start_token_id=252,
               vision_end_token_id=253, tie_word_embeddings=False)
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=1)
    json.dump({"image_processor_type": "Qwen2VLImageProcessor", "min_pixels": 3136, "max_pixels": 12845056,
               "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2, "resample": 3,
               "image_mean": CLIP_MEAN, "image_std": CLIP_STD}, open(os.path.join(out, "preprocessor_config.json"), "w"))
    write_safetensors(os.path.join(out, "model.safetensors"), w)


def text_gguf(path, w):
    g = gguf.GGUFWriter(path, "qwen2vl")
    g.add_name("random qwen2vl")
    g.add_context_length(4096)
    g.add_embedding_length(T["hidden_size"])
    g.add_block_count(T["num_hidden_layers"])
    g.add_feed_forward_length(T["intermediate_size"])
    g.add_head_count(T["num_attention_heads"])
    g.add_head_count_kv(T["num_key_value_heads"])
    g.add_layer_norm_rms_eps(T["rms_norm_eps"])
    g.add_rope_freq_base(T["rope_theta"])
    g.add_rope_dimension_sections(T["mrope_section"] + [0])
    g.add_file_type(gguf.LlamaFileType.ALL_F32)
    chars = byte_level_chars()
    tokens = [chars[b] for b in range(248)] + list(SPECIALS)
    types = [gguf.TokenType.NORMAL] * 249 + [gguf.TokenType.CONTROL] * 7
    g.add_tokenizer_model("gpt2")
    g.add_tokenizer_pre("qwen2")
    g.add_token_list(tokens)
    g.add_token_types(types)
    g.add_token_merges(["Ġ Ġ"])
    g.add_eos_token_id(249)
    g.add_add_bos_token(False)
    g.add_chat_template("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN2VL, T["num_hidden_layers"])
    for k, v in w.items():
        if not (k.startswith("model.language_model.") or k == "lm_head.weight"):
            continue
        hf = k.replace("model.language_model.", "model.")
        base, suffix = hf.rsplit(".", 1)
        g.add_tensor(names.get_name(base) + "." + suffix, v)
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()


def mmproj_gguf(path, w):
    g = gguf.GGUFWriter(path, "clip")
    g.add_clip_has_vision_encoder(True)
    g.add_clip_projector_type(gguf.VisionProjectorType.QWEN2VL)
    g.add_vision_projection_dim(T["hidden_size"])
    g.add_vision_embedding_length(V["embed_dim"])
    g.add_vision_feed_forward_length(V["embed_dim"] * V["mlp_ratio"])
    g.add_vision_block_count(V["depth"])
    g.add_vision_head_count(V["num_heads"])
    g.add_vision_attention_layernorm_eps(1e-6)
    g.add_vision_image_size(560)
    g.add_vision_patch_size(V["patch_size"])
    g.add_vision_image_mean(CLIP_MEAN)
    g.add_vision_image_std(CLIP_STD)
    g.add_vision_spatial_merge_size(V["spatial_merge_size"])
    g.add_file_type(gguf.LlamaFileType.ALL_F32)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, V["depth"])
    for k, v in w.items():
        if not k.startswith("model.visual."):
            continue
        hf = k.replace("model.visual.", "visual.")
        base, suffix = hf.rsplit(".", 1)
        if "patch_embed.proj" in hf:
            g.add_tensor("v.patch_embd.weight", np.ascontiguousarray(v[:, :, 0]))
            g.add_tensor("v.patch_embd.weight.1", np.ascontiguousarray(v[:, :, 1]))
            continue
        if "merger.mlp.2" in hf:
            g.add_tensor("mm.2." + suffix, v)
            continue
        if ".qkv" in hf:
            third = v.shape[0] // 3
            for j, part in enumerate(("q", "k", "v")):
                g.add_tensor(names.get_name(base.replace("qkv", part)) + "." + suffix, v[j * third:(j + 1) * third])
            continue
        g.add_tensor(names.get_name(base) + "." + suffix, v)
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()


def main():
    out = sys.argv[1]
    w = weights(np.random.default_rng(26))
    hf_folder(os.path.join(out, "hf"), w)
    text_gguf(os.path.join(out, "text.gguf"), w)
    mmproj_gguf(os.path.join(out, "mmproj.gguf"), w)
    print("wrote", out, sum(v.size for v in w.values()), "parameters")


if __name__ == "__main__":
    main()
