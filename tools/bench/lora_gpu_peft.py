#!/usr/bin/env python3
"""The PyTorch + PEFT side of tools/bench/lora_gpu_compare.sh, and the model both sides
train: a transformers model of a config's shape with random bf16 weights.

  python3 tools/bench/lora_gpu_peft.py make CONFIG OUT_DIR [--tokenizer-dir DIR]
      writes OUT_DIR (config.json, model.safetensors in bf16 as save_pretrained writes it,
      the tokenizer files of DIR) with transformers' random initialization, made on the GPU;
  python3 tools/bench/lora_gpu_peft.py bench OUT_DIR [--batch 4] [--seq 512] [--rank 8]
      [--layers 16] [--steps 3] [--warmup 2]
      loads it in bf16 on the GPU, adds PEFT LoRA (r, lora_alpha = 20 r: mlx-lm's scale 20,
      dropout 0) on q/k/v/o/gate/up/down of the last N blocks, and times forward + mean
      cross-entropy + backward + torch.optim.AdamW on a batch of random tokens; prints
      tokens/s of the timed steps and torch.cuda.max_memory_allocated.
"""
import argparse
import json
import os
import shutil
import time

import torch


def make(args):
    from transformers import AutoConfig, AutoModelForCausalLM

    with open(args.config) as f:
        raw = json.load(f)
    raw.pop("architectures", None)
    raw.pop("torch_dtype", None)
    model_type = raw.pop("model_type")
    try:
        config = AutoConfig.for_model(model_type, **raw)
    except AttributeError:  # a transformers without for_model
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING
        config = CONFIG_MAPPING[model_type](**raw)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config).to(torch.bfloat16)
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(args.out)  # safetensors
    if args.tokenizer_dir:
        for name in ("tokenizer.json", "tokenizer_config.json"):
            src = os.path.join(args.tokenizer_dir, name)
            if os.path.exists(src):
                shutil.copy(src, os.path.join(args.out, name))
    n = sum(p.numel() for p in model.parameters())
    print(f"made {args.out}: {n / 1e6:.1f}M parameters, bf16, {config.num_hidden_layers} layers")


def bench(args):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    dev = torch.device("cuda")
    model = AutoModelForCausalLM.from_pretrained(args.model).to(dev, torch.bfloat16)
    n_layers = model.config.num_hidden_layers
    lc = LoraConfig(r=args.rank, lora_alpha=20 * args.rank, lora_dropout=0.0,
                    target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                    layers_to_transform=list(range(n_layers - args.layers, n_layers)))
    model = get_peft_model(model, lc)
    # fp32 adapters over the bf16 base, as lmx trains them.
    for name, p in model.named_parameters():
        if p.requires_grad:
            p.data = p.data.float()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    torch.manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (args.batch, args.seq + 1), device=dev)
    inputs, labels = ids[:, :-1], ids[:, 1:]
    model.train()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    timed = 0.0
    for s in range(args.warmup + args.steps):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        logits = model(input_ids=inputs).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), labels.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if s >= args.warmup:
            timed += dt
        print(f"peft step {s}{' (warm-up)' if s < args.warmup else ''}: loss {loss.item():.4f}, {dt:.3f} s", flush=True)
    peak = torch.cuda.max_memory_allocated() / 2**30
    import peft
    import transformers
    print(f"RESULT peft tokens_per_s {args.batch * args.seq * args.steps / timed:.1f} peak_gib {peak:.2f} "
          f"trainable {trainable} torch {torch.__version__} transformers {transformers.__version__} "
          f"peft {peft.__version__} device {torch.cuda.get_device_name(0)}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("config")
    m.add_argument("out")
    m.add_argument("--tokenizer-dir")
    b = sub.add_parser("bench")
    b.add_argument("model")
    b.add_argument("--batch", type=int, default=4)
    b.add_argument("--seq", type=int, default=512)
    b.add_argument("--rank", type=int, default=8)
    b.add_argument("--layers", type=int, default=16)
    b.add_argument("--steps", type=int, default=3)
    b.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    make(args) if args.cmd == "make" else bench(args)


if __name__ == "__main__":
    main()
