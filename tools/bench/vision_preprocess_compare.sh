#!/usr/bin/env bash
# Qwen2-VL image preprocessing of a 1920x1080 JPEG: lmx against transformers, one thread
# each, in the same run (issue 26's target: lmx >= 3x transformers' default processor).
#   LMX=build/apps/lmx/lmx [PYTHON=python3] [RUNS=20] tools/bench/vision_preprocess_compare.sh
# Times decode + preprocessing (the JPEG read from disk each run) and preprocessing alone,
# medians of RUNS after a warm-up, for: lmx (`lmx preprocess --runs`), transformers'
# AutoImageProcessor for a qwen2_vl preprocessor_config.json (its default class: the
# torchvision one where torchvision is installed), and its Pillow class
# (Qwen2VLImageProcessorPil, what lmx equals). The JPEG is made here with Pillow
# (a deterministic 1920x1080 picture, quality 90; without Pillow, ffmpeg's testsrc2) and not kept.
set -euo pipefail
LMX=${LMX:?set LMX to an lmx binary}
PYTHON=${PYTHON:-python3}
RUNS=${RUNS:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# Qwen2-VL-7B-Instruct's preprocessor_config.json values.
cat > "$work/preprocessor_config.json" <<'JSON'
{"image_processor_type": "Qwen2VLImageProcessor", "min_pixels": 3136, "max_pixels": 12845056,
 "patch_size": 14, "temporal_patch_size": 2, "merge_size": 2, "resample": 3,
 "do_rescale": true, "rescale_factor": 0.00392156862745098, "do_normalize": true,
 "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
 "do_convert_rgb": true}
JSON
"$PYTHON" - "$work/frame.jpg" <<'PY' 2>/dev/null || ffmpeg -nostdin -v error -f lavfi -i "testsrc2=size=1920x1080" -frames:v 1 -q:v 3 "$work/frame.jpg"
import sys
import numpy as np
from PIL import Image
h, w = 1080, 1920
y, x = np.mgrid[0:h, 0:w].astype(np.float32)
rng = np.random.default_rng(26)
img = np.stack([128 + 100 * np.sin(x / 97.0) * np.cos(y / 53.0), x * 255.0 / w, y * 255.0 / h], -1)
img += rng.normal(0, 12, img.shape)
Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB").save(sys.argv[1], quality=90)
PY
echo "machine: $(nproc) cores; load: $(uptime | sed 's/.*load average: //')"
isa=$("$LMX" bench kernels --quick --filter none 2>/dev/null | head -1 || true)
echo "${isa:-cpu: $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //') (lmx built without the kernel report)}"
lmx_line=$("$LMX" preprocess --processor-config "$work/preprocessor_config.json" --image "$work/frame.jpg" --runs "$RUNS")
echo "lmx: $lmx_line"
"$PYTHON" -c "import transformers, PIL" 2>/dev/null || { echo "no transformers / Pillow for $PYTHON: lmx only"; exit 0; }
"$PYTHON" - "$work" "$RUNS" "$lmx_line" <<'PY'
import json, re, statistics, sys, time
work, runs, lmx_line = sys.argv[1], int(sys.argv[2]), sys.argv[3]
m = re.search(r"decode ([\d.]+) ms, preprocess ([\d.]+) ms, both ([\d.]+) ms", lmx_line)
lmx_pre, lmx_both = float(m.group(2)), float(m.group(3))
try:
    import torch
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
except Exception as e:
    print("torch:", e)
import transformers
from PIL import Image
from transformers import AutoImageProcessor
print("transformers", transformers.__version__)
jpg = work + "/frame.jpg"

def timed(proc):
    pre, both = [], []
    for run in range(runs + 1):
        t0 = time.perf_counter()
        img = Image.open(jpg).convert("RGB")
        t1 = time.perf_counter()
        out = proc(images=[img], return_tensors="np")
        t2 = time.perf_counter()
        if run:
            pre.append((t2 - t1) * 1e3)
            both.append((t2 - t0) * 1e3)
    shape = tuple(out["pixel_values"].shape)
    return statistics.median(pre), statistics.median(both), shape

procs = []
auto = AutoImageProcessor.from_pretrained(work)
procs.append(("AutoImageProcessor (%s)" % type(auto).__name__, auto))
try:
    cls = getattr(transformers, "Qwen2VLImageProcessorPil", None)
    if cls is None:
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil as cls
    cfg = json.load(open(work + "/preprocessor_config.json"))
    cfg.pop("image_processor_type")
    procs.append(("Qwen2VLImageProcessorPil", cls(**cfg)))
except Exception as e:
    print("Pillow class unavailable:", e)
print("%-48s %14s %16s %10s" % ("", "preprocess ms", "decode+prep ms", "lmx x"))
print("%-48s %14.2f %16.2f %10s" % ("lmx (-t 1: lmx_vision is single-threaded)", lmx_pre, lmx_both, ""))
for name, proc in procs:
    pre, both, shape = timed(proc)
    print("%-48s %14.2f %16.2f %9.2fx  pixel_values %s" % (name, pre, both, pre / lmx_pre, shape))
PY
