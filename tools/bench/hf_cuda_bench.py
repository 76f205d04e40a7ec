#!/usr/bin/env python3
"""The transformers reference of `lmx bench --device cuda` (issue 16): random bf16 weights of a
config's shape on the GPU, SDPA attention, static KV cache, batch 1.

  python3 tools/bench/hf_cuda_bench.py CONFIG.json [--prefill 2048] [--prompt 512] [--gen 128] [--runs 3]

Prints one line per measurement (medians of --runs after a warm-up, CUDA-synchronized wall time):
  hf pp<P>: prefill tok/s of a P-token prompt (logits of the last token only, as llama-bench and
            lmx bench compute them)
  hf tg<G>: decode tok/s of G greedy tokens after a --prompt-token prompt with a static cache
            (generate's time less the same prompt's prefill time, over G)
Written in session 12 for the GPU machine (torch + transformers there); not yet run: the device
machine did not start that session.
"""
import argparse
import json
import statistics
import time

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--prefill", type=int, default=2048)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()

    raw = json.load(open(a.config))
    cfg = AutoConfig.for_model(**raw)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16, attn_implementation="sdpa")
    model = model.cuda().eval()
    gen = torch.Generator(device="cuda").manual_seed(1)

    def ids(n):
        return torch.randint(0, cfg.vocab_size, (1, n), device="cuda", generator=gen)

    @torch.no_grad()
    def prefill(x):
        model(x, use_cache=False, logits_to_keep=1)

    @torch.no_grad()
    def generate(x):
        out = model.generate(x, max_new_tokens=a.gen, min_new_tokens=a.gen, do_sample=False,
                             cache_implementation="static", pad_token_id=0)
        assert out.shape[1] == x.shape[1] + a.gen, out.shape

    x = ids(a.prefill)
    prefill(x)
    pp = statistics.median(timed(lambda: prefill(x)) for _ in range(a.runs))
    print(f"hf pp{a.prefill}: {a.prefill / pp:,.0f} tok/s ({pp * 1e3:.2f} ms)")

    p = ids(a.prompt)
    generate(p)
    pre = statistics.median(timed(lambda: prefill(p)) for _ in range(a.runs))
    tot = statistics.median(timed(lambda: generate(p)) for _ in range(a.runs))
    print(f"hf tg{a.gen}: {a.gen / (tot - pre):,.1f} tok/s (generate {tot * 1e3:.1f} ms, "
          f"prompt {pre * 1e3:.1f} ms)")
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
