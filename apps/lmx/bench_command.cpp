// lmx bench kernels: the kernel report (matmul family against this machine's measured
// bandwidth and FMA peak).
#include <CLI/CLI.hpp>
#include <iostream>

#ifdef LMX_HAVE_KERNEL_REPORT
#include "bench/kernel_report.h"
#endif
#include "cli_common.h"
#include "commands.h"
#include "model_bench.h"
#include "vision_bench.h"
#include "lmx/base/error.h"

namespace lmx::cli {

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand(
      "bench", "Prefill / decode speed of a model (or random weights of a config's shape); `bench kernels`");
  bench->require_subcommand(0, 1);
  auto m = std::make_shared<ModelBenchArgs>();
  bench->add_option("-m,--model", m->model, "Model folder or Hugging Face repo id");
  bench->add_option("--config", m->config, "config.json: benchmark random weights of this shape");
  bench->add_flag("-q,--quantize", m->quantize, "With --config: MLX-quantize the random weights");
  bench->add_option("--q-mode", m->q_mode, "Mode for -q: affine (default), mxfp4, mxfp8, nvfp4");
  bench->add_option("--q-bits", m->q_bits, "Bits for -q (default: the mode's, 4 for affine)");
  bench->add_option("--q-group-size", m->q_group_size, "Group size for -q (default: the mode's, 64 for affine)");
  bench->add_option("--draft-model", m->draft_model, "Also benchmark speculative decoding with this draft model");
  bench->add_option("--draft-config", m->draft_config,
                    "Also benchmark speculative decoding with random weights of this config as the draft");
  bench->add_option("--num-draft-tokens", m->num_draft_tokens, "Tokens drafted per step (default 3)");
  bench->add_option("--dtype", m->dtype, "With --config: float dtype (bf16, f16, f32; default bf16)");
  bench->add_option("-p,--prompt-tokens", m->prompt_tokens, "Prompt length (default 512)");
  bench->add_option("-g,--generation-tokens", m->generation_tokens, "Tokens to decode (default 128)");
  bench->add_option("-d,--depth", m->depth, "Decode after this many cached tokens (default 0, as llama-bench)");
  bench->add_option("-b,--batch", m->batch, "Also decode this many sequences together: aggregate tokens/s (default 1)");
  bench->add_option("-n,--runs", m->runs, "Timed runs after one warm-up (default 3)");
  bench->add_option("-t,--threads", m->threads, "CPU threads");
  add_device_option(bench, m->device);
  add_tensor_parallel_option(bench, m->tensor_parallel);
  bench->add_flag("--json", m->json, "Print one JSON object");
  auto image = std::make_shared<std::string>();
  bench->add_option("--image", *image,
                    "With --model (a vision-language model): time image preprocessing, the vision encoder and "
                    "the prefill of a prompt holding the image (medians)");
  auto* kernels = bench->add_subcommand("kernels", "Kernel report: GB/s and GFLOP/s next to the measured roofline");
  bench->callback([bench, m, image] {
    if (!bench->get_subcommands().empty()) return;  // `bench kernels` ran
    if (m->model.empty() == m->config.empty()) throw InvalidArgument("bench: give --model or --config");
    if (!image->empty()) {
      if (m->model.empty()) throw InvalidArgument("bench --image needs --model (a vision-language model folder)");
      VisionBenchArgs v;
      v.model = m->model;
      v.image = *image;
      if (bench->count("-p")) v.prompt_tokens = m->prompt_tokens;
      v.runs = m->runs;
      v.threads = m->threads;
      v.device = m->device;
      v.json = m->json;
      run_vision_bench(v);
      return;
    }
    run_model_bench(*m);
  });
#ifdef LMX_HAVE_KERNEL_REPORT
  auto opts = std::make_shared<bench::KernelReportOptions>();
  kernels->add_option("--threads", opts->threads, "Threads (default 2)");
  kernels->add_option("--repeats", opts->repeats, "Timed samples per kernel (median reported)");
  kernels->add_flag("--quick", opts->quick, "Fewer shapes");
  kernels->add_option("--filter", opts->filter, "Only kernels whose name contains this");
  kernels->callback([opts] {
    int rc = bench::run_kernel_report(std::cout, *opts);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
#else
  kernels->callback([] { throw Unsupported("this lmx was built without benchmarks (-DLMX_BUILD_BENCH=OFF)"); });
#endif
}

}  // namespace lmx::cli
