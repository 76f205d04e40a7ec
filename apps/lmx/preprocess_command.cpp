// lmx preprocess: runs a model's image processor (equal to transformers' Pillow-based one)
// on image files and writes its outputs under transformers' names as safetensors.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "cli_common.h"
#include "commands.h"
#include "lmx/base/error.h"
#include "lmx/io/safetensors_writer.h"
#include "lmx/vision/image_decode.h"
#include "lmx/vision/image_processor.h"

namespace lmx::cli {
namespace {

struct PreprocessArgs {
  std::string model;
  std::string config;
  std::vector<std::string> images;
  std::string out;
  int runs = 0;  // > 0: time decode + processing this many times (after one warm-up)
};

using Clock = std::chrono::steady_clock;

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// Median wall times of decoding the images and of the processor (one thread: lmx_vision
// runs on the calling thread).
void time_preprocessing(const PreprocessArgs& a, const vision::ImageProcessor& processor) {
  std::vector<double> decode, process;
  for (int run = 0; run <= a.runs; ++run) {
    auto t0 = Clock::now();
    std::vector<vision::Image> images;
    for (const auto& source : a.images) images.push_back(vision::load_image(source));
    auto t1 = Clock::now();
    vision::ProcessorOutput out = processor.process(images);
    auto t2 = Clock::now();
    if (run == 0) continue;
    decode.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
    process.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
  }
  std::vector<double> total(decode.size());
  for (size_t i = 0; i < total.size(); ++i) total[i] = decode[i] + process[i];
  std::printf("median of %d runs: decode %.3f ms, preprocess %.3f ms, both %.3f ms\n", a.runs, median_of(decode),
              median_of(process), median_of(total));
}

void run_preprocess(const PreprocessArgs& a) {
  if (a.model.empty() == a.config.empty()) {
    throw InvalidArgument("preprocess: give exactly one of --model and --processor-config");
  }
  auto processor = vision::load_image_processor(
      a.model.empty() ? std::filesystem::path(a.config) : resolve_model_arg(a.model));
  if (a.runs > 0) {
    time_preprocessing(a, *processor);
    if (a.out.empty()) return;
  } else if (a.out.empty()) {
    throw InvalidArgument("preprocess: give --out (or --runs to time it)");
  }
  std::vector<vision::Image> images;
  for (const auto& source : a.images) images.push_back(vision::load_image(source));
  vision::ProcessorOutput out = processor->process(images);
  io::SafetensorsWriter writer;
  std::printf("%s:", std::string(processor->type()).c_str());
  for (const auto& t : out.tensors) {
    const bool f32 = t.is_f32();
    const void* data = f32 ? static_cast<const void*>(t.f32.data()) : static_cast<const void*>(t.i64.data());
    const size_t bytes = f32 ? t.f32.size() * sizeof(float) : t.i64.size() * sizeof(int64_t);
    writer.add(t.name, f32 ? Dtype::f32 : Dtype::i64, t.shape, data, bytes);
    std::printf(" %s [", t.name.c_str());
    for (size_t i = 0; i < t.shape.size(); ++i) {
      std::printf("%s%lld", i ? ", " : "", static_cast<long long>(t.shape[i]));
    }
    std::printf("] %s", f32 ? "f32" : "i64");
  }
  std::printf("\n");
  writer.write(a.out);
  std::printf("wrote %s\n", a.out.c_str());
}

}  // namespace

void add_preprocess_command(CLI::App& app) {
  auto a = std::make_shared<PreprocessArgs>();
  auto* cmd = app.add_subcommand(
      "preprocess", "Run a model's image processor on images; write its outputs (safetensors)");
  cmd->add_option("-m,--model", a->model, "Model folder (its preprocessor_config.json) or repo id");
  cmd->add_option("--processor-config", a->config,
                  "preprocessor_config.json or processor_config.json");
  cmd->add_option("--image", a->images, "Image file (PNG, JPEG, WebP, GIF) or data URL; repeatable")
      ->required();
  cmd->add_option("--out", a->out, "Output .safetensors (pixel_values f32, image_grid_thw i64, ...)");
  cmd->add_option("--runs", a->runs, "Time decoding + preprocessing: median of this many runs after a warm-up")
      ->check(CLI::PositiveNumber);
  cmd->callback([a] { run_preprocess(*a); });
}

}  // namespace lmx::cli
