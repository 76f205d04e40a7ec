#!/usr/bin/env python3
"""The transformers side of tools/bench/vlm_gpu_compare.sh (issue 26): Qwen2-VL-2B's shape with
random bf16 weights on the GPU, SDPA attention, one 448x448 image and a short text prompt.

  python3 tools/bench/qwen2vl_hf_cuda_bench.py make DIR [--runs 7]
      makes the random model on the GPU, writes DIR/model (save_pretrained, plus a
      preprocessor_config.json: the folder `lmx bench --image` loads) and DIR/image.png, then times it
  python3 tools/bench/qwen2vl_hf_cuda_bench.py time DIR [--runs 7]
      loads DIR/model again and times it

Timed (CUDA-synchronised wall time, medians of --runs after 3 warm-ups), as `lmx bench --image
--device cuda` times its side:
  encoder: pixel_values (the processor's, on the host) to the GPU, the vision tower and merger
           (get_image_features)
  first token: pixel_values to the GPU, then the forward of the whole prompt (vision tower,
           merger, text model; logits of the last position only, no KV cache: use_cache=False
           as lmx bench's prefill runs without one)
The prompt is lmx bench's: 8 random text tokens, the image's 256 placeholders, 8 more text tokens.
Prints one JSON object.
"""
import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import transformers
from PIL import Image

# Qwen2-VL-2B-Instruct's config.json in transformers 5's layout (the fixture's, at full size).
TEXT = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
            num_attention_heads=12, num_key_value_heads=2, hidden_act="silu", max_position_embeddings=32768,
            rms_norm_eps=1e-6, vocab_size=151936, tie_word_embeddings=True, use_sliding_window=False,
            sliding_window=None, max_window_layers=28, bos_token_id=151643, eos_token_id=151645,
            attention_dropout=0.0, initializer_range=0.02,
            rope_parameters=dict(rope_type="default", rope_theta=1000000.0, mrope_section=[16, 24, 24]))
VISION = dict(depth=32, embed_dim=1280, hidden_size=1536, hidden_act="quick_gelu",
              mlp_ratio=4, num_heads=16, in_channels=3, patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
              initializer_range=0.02)
TOKENS = dict(image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653)
PREPROCESSOR = dict(image_processor_type="Qwen2VLImageProcessor", min_pixels=3136, max_pixels=12845056, patch_size=14,
                    temporal_patch_size=2, merge_size=2, image_mean=[0.48145466, 0.4578275, 0.40821073],
                    image_std=[0.26862954, 0.26130258, 0.27577711], resample=3)
SIDE = 448
TEXT_TOKENS = 16


def make_model(out):
    cfg = transformers.Qwen2VLConfig(text_config=TEXT, vision_config=VISION, tie_word_embeddings=True, **TOKENS)
    torch.manual_seed(0)
    cls = transformers.Qwen2VLForConditionalGeneration
    with torch.device("cuda"):
        try:
            model = cls._from_config(cfg, attn_implementation="sdpa", dtype=torch.bfloat16)
        except TypeError:
            model = cls._from_config(cfg, attn_implementation="sdpa", torch_dtype=torch.bfloat16)
    model.save_pretrained(out)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(PREPROCESSOR, f, indent=1)
    return model


def load_model(out):
    cls = transformers.Qwen2VLForConditionalGeneration
    for kwargs in (dict(dtype=torch.bfloat16, device_map="cuda"), dict(torch_dtype=torch.bfloat16, device_map="cuda"),
                   dict(torch_dtype=torch.bfloat16)):
        try:
            model = cls.from_pretrained(out, attn_implementation="sdpa", **kwargs)
            return model if next(model.parameters()).is_cuda else model.to("cuda")
        except (TypeError, ValueError, ImportError) as e:
            print("from_pretrained(%s) failed: %r" % (sorted(kwargs), e), file=sys.stderr)
    raise SystemExit("could not load " + out)


def make_image(path):
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32)
    rng = np.random.default_rng(26)
    img = np.stack([128 + 100 * np.sin(x / 23.0) * np.cos(y / 17.0), x * 255.0 / SIDE, y * 255.0 / SIDE], -1)
    img += rng.normal(0, 12, img.shape)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").save(path)


def pixel_inputs(folder, image_path):
    """The processor's pixel_values and image_grid_thw (host tensors); random values of the
    same shape if this transformers' processor refuses the config (the timing does not
    depend on the values)."""
    try:
        proc = transformers.AutoImageProcessor.from_pretrained(folder)
        out = proc(images=[Image.open(image_path).convert("RGB")], return_tensors="pt")
        pv, grid = out["pixel_values"], out["image_grid_thw"]
        source = type(proc).__name__
    except Exception as e:  # noqa: BLE001
        print("processor failed (%r): random pixel_values" % (e,), file=sys.stderr)
        side = SIDE // 14
        pv, grid = torch.randn(side * side, 3 * 2 * 14 * 14), torch.tensor([[1, side, side]])
        source = "random"
    return pv.float(), grid, source


def timed(fn, runs):
    for _ in range(3):
        fn()
    out = []
    for _ in range(runs):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["make", "time"])
    ap.add_argument("dir")
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    folder = os.path.join(a.dir, "model")
    image_path = os.path.join(a.dir, "image.png")
    t0 = time.perf_counter()
    if a.mode == "make":
        os.makedirs(folder, exist_ok=True)
        make_image(image_path)
        model = make_model(folder)
    else:
        model = load_model(folder)
    model.eval()
    setup_s = time.perf_counter() - t0
    pv, grid, source = pixel_inputs(folder, image_path)
    merge = 2
    image_tokens = int(grid.prod(-1).sum()) // (merge * merge)
    rng = np.random.default_rng(11)
    text = lambda n: rng.integers(0, 1000, n).tolist()
    ids = text(TEXT_TOKENS // 2) + [TOKENS["image_token_id"]] * image_tokens + text(TEXT_TOKENS - TEXT_TOKENS // 2)
    ids = torch.tensor([ids], device="cuda")
    grid_gpu = grid.to("cuda")
    features = getattr(model, "get_image_features", None) or model.model.get_image_features

    @torch.inference_mode()
    def encoder():
        return features(pixel_values=pv.to("cuda"), image_grid_thw=grid_gpu)

    # transformers 5 computes M-RoPE from mm_token_type_ids (1 = image token), which its
    # processor returns beside input_ids.
    kwargs = dict(use_cache=False, logits_to_keep=1,
                  mm_token_type_ids=(ids == TOKENS["image_token_id"]).to(torch.long))

    @torch.inference_mode()
    def first_token():
        return model(input_ids=ids, pixel_values=pv.to("cuda"), image_grid_thw=grid_gpu, **kwargs).logits

    for optional in ("mm_token_type_ids", "logits_to_keep"):  # older transformers lack them
        try:
            first_token()
            break
        except TypeError:
            kwargs.pop(optional)
    enc = timed(encoder, a.runs)
    ft = timed(first_token, a.runs)
    logits = first_token()
    print(json.dumps({
        "side": "transformers", "mode": a.mode, "setup_s": round(setup_s, 1),
        "pixel_values": list(pv.shape), "image_grid_thw": grid.tolist(), "processor": source,
        "prompt_tokens": ids.shape[1], "image_tokens": image_tokens,
        "attn": getattr(model.config, "_attn_implementation", None),
        "vision_attn": getattr(model.config.vision_config, "_attn_implementation", None),
        "dtype": str(next(model.parameters()).dtype), "logits_kept": list(logits.shape),
        "encoder_ms": statistics.median(enc), "encoder_runs_ms": [round(v, 2) for v in enc],
        "first_token_ms": statistics.median(ft), "first_token_runs_ms": [round(v, 2) for v in ft],
        "first_token_argmax": int(logits[0, -1].float().argmax()),
        "device": torch.cuda.get_device_name(), "torch": torch.__version__, "transformers": transformers.__version__,
    }))


if __name__ == "__main__":
    main()
