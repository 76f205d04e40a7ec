#!/usr/bin/env bash
# Runs on the GPU device machine from the repository root (what tools/device/pack.sh packed
# travels in .devdata): the CUDA tests, stories260K greedy CPU == CUDA, the matvec roofline,
# `lmx bench` on the Llama-3.2-1B shape (bf16 / 8-bit / 4-bit; pp512 + tg128, pp2048, batch 32),
# the transformers reference, and llama.cpp built for sm_90 in the background then llama-bench on
# random GGUFs of the same shape. Logs go to /tmp/logs and come back as $OUT/logs.tgz (refreshed
# after each step, so a run cut short still returns what it did). Steps: STEPS="tests bench prof ncu
# hf llama serve qwen" (default: tests bench hf llama; qwen: the batch-1 / prefill rows and llama-bench
# also on the Qwen2.5-0.5B shape; prof and ncu: event profiles of batch 32 and of 4-bit
# prefill, an ncu report of the decode attention; serve: llama-server built for CUDA from
# .devdata/llserver.tar.xz (pack.sh with LLAMA_SERVER=1) and tools/bench/serve_gpu_compare.sh,
# its output in $OUT/serve); extra `lmx bench` arguments: BENCH_ARGS. STEPS="" runs none.
# EXTRA_EARLY / EXTRA: commands run after the tests / at the end ($B bins, $CFG, $L logs).
set -u
R=$PWD; D=$R/.devdata; L=/tmp/logs; mkdir -p "$L"
STEPS=${STEPS-"tests bench hf llama"}
T0=$(date +%s)
el() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
pack() { tar czf "$OUT/logs.tgz" -C /tmp logs 2>/dev/null; }
has() { [[ " $STEPS " == *" $1 "* ]]; }
nvidia-smi -L | tee "$L/gpu.txt"
mkdir -p /tmp/b && tar xJf "$D/bin.tar.xz" -C /tmp/b && B=/tmp/b/bin
export LD_LIBRARY_PATH=/tmp/b/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
for m in cublas cuda_runtime; do
  d=$(python3 -c "import nvidia.$m,os;print(os.path.dirname(nvidia.$m.__file__))" 2>/dev/null) && export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$d/lib
done
ldd "$B/backend_cuda_test" | grep 'not found'
ln -sfn "$D/shared" "$R/../shared"
CFG=$R/../shared/data/configs/llama-3.2-1b.json
# The shapes of the batch-1 and prefill rows: Llama-3.2-1B, and Qwen2.5-0.5B with the step `qwen`.
SHAPES="llama:$CFG"
has qwen && SHAPES="$SHAPES qwen:$R/../shared/data/configs/qwen2.5-0.5b.json"
export LMX_TEST_MODELS=$R/tests/data/models LMX_TEST_EMBED=$R/tests/data/embed
if has hf; then  # first: its torch compile is slowed by the llama.cpp build
  el transformers
  for shape in $SHAPES; do
    timeout 150 python3 tools/bench/hf_cuda_bench.py "${shape#*:}" --prefill 2048 --prompt 512 --gen 128 --runs 3 \
      > "$L/hf_${shape%%:*}.log" 2>&1
    echo "${shape%%:*}: $(grep -E "^hf" "$L/hf_${shape%%:*}.log" | tr '\n' ' ')"; pack
  done
fi
if has llama; then
  bash tools/device/build_llama_bench.sh "$D" "$L" 12 &
fi
if has serve; then  # built while the GPU steps run
  mkdir -p /tmp/lls && tar xJf "$D/llserver.tar.xz" -C /tmp/lls
  ( nice -n 19 cmake -S /tmp/lls -B /tmp/llsb -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_APP=OFF -DGGML_NATIVE=ON \
      -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF > "$L/llscfg.log" 2>&1 &&
    nice -n 19 cmake --build /tmp/llsb -j 14 --target llama-server llama-quantize > "$L/llsbuild.log" 2>&1
    echo "LLSBUILD_RC=$?" >> "$L/llsbuild.log" ) &
  # The comparison makes its models meanwhile, then waits for /tmp/serve_ready (the build done and
  # the GPU steps below finished, so that nothing else runs while the servers are measured).
  el "serve_gpu_compare (background)"
  env LMX="$B/lmx" LLAMA_SERVER=/tmp/llsb/bin/llama-server GGUF_PY=/tmp/lls/gguf-py \
    VOCAB_GGUF=/tmp/lls/models/ggml-vocab-llama-bpe.gguf OUT="$OUT/serve" READY_FILE=/tmp/serve_ready ${SERVE_ENV:-} \
    timeout ${SERVE_TIMEOUT:-560} bash tools/bench/serve_gpu_compare.sh > "$L/serve.log" 2>&1 &
  SERVE_PID=$!
fi
if has tests; then
  el "backend_cuda_test"
  timeout 300 "$B/backend_cuda_test" > "$L/t_all.log" 2>&1; echo "rc=$?" >> "$L/t_all.log"
  grep -E "^\[  (PASSED|FAILED) |FAILED  \]|rc=" "$L/t_all.log" | tail -20
  for dev in cpu cuda; do
    "$B/lmx" generate --device $dev --model "$D/stories" --prompt "Once upon a time" --max-tokens 300 --temp 0 \
      > "$L/stories_$dev.txt" 2>&1
  done
  cmp "$L/stories_cpu.txt" "$L/stories_cuda.txt" && echo "stories260K greedy: CPU == CUDA"; pack
fi
if [ -n "${EXTRA_EARLY:-}" ]; then el "extra (early): $EXTRA_EARLY"; eval "$EXTRA_EARLY" 2>&1 | tee "$L/extra_early.log"; pack; fi
if has bench; then
  el "matvec roofline"; timeout 60 "$B/cuda_matvec_bench" 20 > "$L/mv.log" 2>&1; grep -E "copy|WHOLE" "$L/mv.log"
  for k in 576 2048; do timeout 60 "$B/cuda_attention_bench" $k; done 2>&1 | tee "$L/attn.log"
  run() { local tag=$1; shift; el "$tag"; timeout 150 "$B/lmx" bench --device cuda --config "${SCFG:-$CFG}" "$@" \
            ${BENCH_ARGS:-} > "$L/b_$tag.log" 2>&1; grep -E "^(pp|tg)|graphs" "$L/b_$tag.log"; pack; }
  for shape in $SHAPES; do
    name=${shape%%:*} SCFG=${shape#*:}
    for t in bf16 q8 q4; do
      case $t in bf16) A=(--dtype bf16);; q8) A=(-q --q-bits 8);; q4) A=(-q --q-bits 4);; esac
      run "${name}_$t" "${A[@]}" -p 512 -g 128 -n 3
      run "${name}_${t}_p2048" "${A[@]}" -p 2048 -g 4 -n 3
    done
  done
  SCFG=$CFG
  run bf16_b32 --dtype bf16 -p 512 -g 64 -n 1 -b 32
  run q4_b32 -q --q-bits 4 -p 512 -g 64 -n 1 -b 32
  el "event profile"
  LMX_CUDA_PROFILE=1 timeout 100 "$B/lmx" bench --device cuda --config "$CFG" --dtype bf16 -p 512 -g 64 -n 1 \
    > "$L/prof_bf16.log" 2>&1; pack
fi
if has prof; then
  prof() { local tag=$1; shift; el "profile $tag"; LMX_CUDA_PROFILE=1 timeout 120 "$B/lmx" bench --device cuda \
             --config "$CFG" "$@" > "$L/prof_$tag.log" 2>&1; pack; }
  for g in 1 33; do  # the difference is 32 decode steps of 32 rows
    prof bf16_b32_g$g --dtype bf16 -p 512 -g $g -n 1 -b 32
    prof q4_b32_g$g -q --q-bits 4 -p 512 -g $g -n 1 -b 32
  done
  prof q4_p2048 -q --q-bits 4 -p 2048 -g 1 -n 1
fi
if has ncu; then  # one decode attention launch at batch 1 and at batch 32, every section
  for b in 1 32; do  # -b 32 runs batch 1 first: 8 steps x 16 layers
    el "ncu decode attention b$b"; skip=$(( b == 1 ? 40 : 200 ))
    timeout 200 ncu --set full -k regex:decode_attention --launch-skip $skip --launch-count 1 "$B/lmx" bench \
      --device cuda --config "$CFG" --dtype bf16 -p 512 -g 8 -n 1 -b $b > "$L/ncu_attn_b$b.log" 2>&1; pack
  done
fi
if has llama; then
  el "waiting for llama.cpp"
  for _ in $(seq 1 200); do grep -q LLBUILD_RC "$L/llbuild.log" 2>/dev/null && break; sleep 3; done
  if [ -x /tmp/llb/bin/llama-bench ]; then
    for shape in $SHAPES; do
      name=${shape%%:*} g=/tmp/$name
      PYTHONPATH=/tmp/ll/gguf-py python3 tools/bench/random_gguf.py "${shape#*:}" $g-f16.gguf \
        "$R/../shared/data/tokenizers/llama.cpp-vocab-gguf/ggml-vocab-gpt-2.gguf" > "$L/gguf_$name.log" 2>&1
      for q in Q8_0 Q4_0; do /tmp/llb/bin/llama-quantize $g-f16.gguf "$g-$q.gguf" $q >> "$L/quant.log" 2>&1; done
      el "llama-bench $name"
      timeout 200 /tmp/llb/bin/llama-bench -m $g-f16.gguf,$g-Q8_0.gguf,$g-Q4_0.gguf -ngl 99 \
        -p 512,2048 -n 128 -r 3 > "$L/llama_bench_$name.log" 2>&1
      grep -E "\|" "$L/llama_bench_$name.log"
    done
  else
    tail -5 "$L/llbuild.log"
  fi
fi
if has serve; then
  el "waiting for llama-server"
  for _ in $(seq 1 200); do grep -q LLSBUILD_RC "$L/llsbuild.log" 2>/dev/null && break; sleep 3; done
  tail -2 "$L/llsbuild.log"
  touch /tmp/serve_ready
  el "serve_gpu_compare measuring"
  wait "$SERVE_PID"; echo "serve rc=$?"
  tail -30 "$OUT/serve/table.md" 2>/dev/null || tail -20 "$L/serve.log"
  pack
fi
if [ -n "${EXTRA:-}" ]; then el "extra: $EXTRA"; eval "$EXTRA" 2>&1 | tee "$L/extra.log"; fi  # $B, $CFG, $L set
el done; pack
