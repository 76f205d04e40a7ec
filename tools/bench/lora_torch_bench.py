#!/usr/bin/env python3
"""The PyTorch side of lmx's LoRA training benchmark (bench/lora_train_bench.cpp): the same
step written in plain torch (Debian's python3-torch; no transformers, no peft).

    /usr/bin/python3 tools/bench/lora_torch_bench.py --config qwen2.5-0.5b.json \\
        [--batch 4] [--seq 512] [--rank 8] [--layers 16] [--steps 2] [--warmup 1] [--threads 2]

A llama-family decoder (RMSNorm, GQA attention with RoPE, optional q/k/v biases as
Qwen2, SwiGLU, tied or separate head) with random f32 weights (uniform +-0.02, frozen),
rank-r LoRA (y = W x + scale * (x A) B, mlx-lm's layout and init, scale 20) on every
Linear of the last N blocks, a batch of random tokens; each step: forward, mean
cross-entropy, backward, torch.optim.AdamW. Prints each step's seconds, tokens/s of the
timed steps (after --warmup untimed steps, default 1) and the peak resident memory.
"""
import argparse
import json
import math
import resource
import time

import torch
import torch.nn.functional as F


class LoraLinear(torch.nn.Module):
    def __init__(self, n_in, n_out, bias, rank, adapted):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(n_out, n_in).uniform_(-0.02, 0.02), requires_grad=False)
        self.bias = torch.nn.Parameter(torch.zeros(n_out), requires_grad=False) if bias else None
        self.a = self.b = None
        if adapted:
            self.a = torch.nn.Parameter(torch.empty(n_in, rank).uniform_(-1 / math.sqrt(n_in), 1 / math.sqrt(n_in)))
            self.b = torch.nn.Parameter(torch.zeros(rank, n_out))

    def forward(self, x):
        y = F.linear(x, self.weight, self.bias)
        if self.a is not None:
            y = y + 20.0 * ((x @ self.a) @ self.b)
        return y


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Block(torch.nn.Module):
    def __init__(self, c, rank, adapted):
        super().__init__()
        h, self.heads, self.kv = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
        self.d = c.get("head_dim") or h // self.heads
        bias = c["model_type"] == "qwen2"
        self.q = LoraLinear(h, self.heads * self.d, bias, rank, adapted)
        self.k = LoraLinear(h, self.kv * self.d, bias, rank, adapted)
        self.v = LoraLinear(h, self.kv * self.d, bias, rank, adapted)
        self.o = LoraLinear(self.heads * self.d, h, False, rank, adapted)
        i = c["intermediate_size"]
        self.gate = LoraLinear(h, i, False, rank, adapted)
        self.up = LoraLinear(h, i, False, rank, adapted)
        self.down = LoraLinear(i, h, False, rank, adapted)
        self.n1 = torch.nn.Parameter(torch.ones(h), requires_grad=False)
        self.n2 = torch.nn.Parameter(torch.ones(h), requires_grad=False)
        self.eps = c["rms_norm_eps"]

    def forward(self, x, cos, sin, mask):
        B, L, _ = x.shape
        a = rms_norm(x, self.n1, self.eps)
        q = self.q(a).view(B, L, self.heads, self.d).transpose(1, 2)
        k = self.k(a).view(B, L, self.kv, self.d).transpose(1, 2)
        v = self.v(a).view(B, L, self.kv, self.d).transpose(1, 2)
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        g = self.heads // self.kv
        k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        p = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.d) + mask, dim=-1)
        x = x + self.o((p @ v).transpose(1, 2).reshape(B, L, -1))
        f = rms_norm(x, self.n2, self.eps)
        return x + self.down(F.silu(self.gate(f)) * self.up(f))


class Model(torch.nn.Module):
    def __init__(self, c, rank, layers):
        super().__init__()
        n = c["num_hidden_layers"]
        self.embed = torch.nn.Parameter(torch.empty(c["vocab_size"], c["hidden_size"]).uniform_(-0.02, 0.02),
                                        requires_grad=False)
        self.blocks = torch.nn.ModuleList([Block(c, rank, i >= n - layers) for i in range(n)])
        self.norm = torch.nn.Parameter(torch.ones(c["hidden_size"]), requires_grad=False)
        self.head = None
        if not c.get("tie_word_embeddings", False):
            self.head = torch.nn.Parameter(torch.empty(c["vocab_size"], c["hidden_size"]).uniform_(-0.02, 0.02),
                                           requires_grad=False)
        self.eps = c["rms_norm_eps"]
        d = self.blocks[0].d
        theta = c.get("rope_theta") or c.get("rope_parameters", {}).get("rope_theta", 10000.0)
        self.inv_freq = 1.0 / theta ** (torch.arange(0, d, 2).float() / d)

    def forward(self, ids):
        L = ids.shape[1]
        f = torch.outer(torch.arange(L).float(), self.inv_freq)
        emb = torch.cat((f, f), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        mask = torch.full((L, L), float("-inf")).triu(1)
        x = F.embedding(ids, self.embed)
        for b in self.blocks:
            x = b(x, cos, sin, mask)
        x = rms_norm(x, self.norm, self.eps)
        return F.linear(x, self.head if self.head is not None else self.embed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--layers", type=int, default=16)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with open(args.config) as f:
        c = json.load(f)
    model = Model(c, args.rank, args.layers)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    ids = torch.randint(0, c["vocab_size"], (args.batch, args.seq + 1))
    inputs, targets = ids[:, :-1], ids[:, 1:].reshape(-1)
    timed = 0.0
    for s in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        logits = model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        dt = time.perf_counter() - t0
        if s >= args.warmup:
            timed += dt
        print(f"step {s}{' (warm-up)' if s < args.warmup else ''}: loss {loss.item():.4f}, {dt:.2f} s", flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1048576.0
    print(f"torch {torch.__version__} LoRA: {args.batch * args.seq} tokens/step, "
          f"{args.batch * args.seq * args.steps / timed:.1f} tokens/s over {args.steps} steps, "
          f"peak RSS {peak:.2f} GiB, {args.threads} threads")


if __name__ == "__main__":
    main()
