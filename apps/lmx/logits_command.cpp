// lmx logits: the porting tool. Runs token ids through a model, prints a summary of
// the last position's logits and writes all positions (and, with --dump-hidden, each
// layer's output) as float32 safetensors.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <numeric>

#include "cli_common.h"
#include "commands.h"
#include "lmx/base/error.h"
#include "lmx/io/safetensors_writer.h"
#include "lmx/models/load.h"
#include "lmx/models/vlm/image_inputs.h"

namespace lmx::cli {
namespace {

struct LogitsArgs {
  std::string model;
  std::string tokens;
  std::string out;
  std::string pixel_values;
  bool dump_hidden = false;
  int threads = 0;
  std::string device = "cpu";
};

// A VLM's image placeholder (which may lie past the vocabulary), else -1.
int64_t image_token_of(models::LanguageModel& model) {
  auto* vlm = dynamic_cast<models::vlm::VisionLanguageModel*>(&model);
  return vlm ? vlm->image_token_id() : -1;
}

void run_logits(const LogitsArgs& a) {
  apply_threads(a.threads);
  const Device device = device_arg(a.device);
  std::vector<int32_t> ids = parse_id_list(a.tokens);
  if (ids.empty()) throw InvalidArgument("--tokens: give at least one token id");
  auto loaded = models::load_model(resolve_model_arg(a.model), models::LoadOptions{.device = device});
  const int64_t vocab = loaded.model->vocab_size();
  const int64_t image_token = image_token_of(*loaded.model);
  for (int32_t id : ids) {
    if ((id < 0 || id >= vocab) && id != image_token) {
      throw InvalidArgument("--tokens: id " + std::to_string(id) + " is outside the vocabulary [0, " +
                            std::to_string(vocab) + ")");
    }
  }
  if (!a.pixel_values.empty()) {
    auto* vlm = dynamic_cast<models::vlm::VisionLanguageModel*>(loaded.model.get());
    if (!vlm) {
      throw InvalidArgument("--pixel-values: " + loaded.model->model_type() + " is not a vision-language model");
    }
    vlm->set_images(models::vlm::read_image_inputs(a.pixel_values));
  }
  std::vector<Tensor> hidden;
  models::ForwardOptions opt;
  if (a.dump_hidden) opt.hidden_states = &hidden;
  Tensor logits = loaded.model->forward(Tensor::from_vector(ids, {1, static_cast<int64_t>(ids.size())}), nullptr, opt);
  // What is printed and saved is read on the host.
  logits = logits.contiguous().to(Device::cpu());
  for (Tensor& h : hidden) h = h.contiguous().to(Device::cpu());
  Tensor last = logits.select(0, 0).select(0, -1).contiguous();
  const float* l = last.data<float>();
  std::vector<int32_t> order(static_cast<size_t>(vocab));
  std::iota(order.begin(), order.end(), 0);
  const int k = static_cast<int>(std::min<int64_t>(5, vocab));
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t x, int32_t y) { return l[x] > l[y]; });
  double mean = 0, sq = 0;
  for (int64_t i = 0; i < vocab; ++i) mean += l[i];
  mean /= static_cast<double>(vocab);
  for (int64_t i = 0; i < vocab; ++i) sq += (l[i] - mean) * (l[i] - mean);
  std::printf("tokens: %zu  vocab: %lld\nlast position: mean %.6f  std %.6f\ntop-%d:", ids.size(),
              static_cast<long long>(vocab), mean, std::sqrt(sq / static_cast<double>(vocab)), k);
  for (int i = 0; i < k; ++i) std::printf(" %d (%.6f)", order[i], l[order[i]]);
  std::printf("\n");
  if (!a.out.empty()) {
    io::SafetensorsWriter w;
    Tensor all = logits.select(0, 0).contiguous();  // [tokens, vocab]
    w.add("logits", Dtype::f32, all.shape(), all.raw_data(), all.nbytes());
    std::vector<Tensor> keep;
    for (size_t i = 0; i < hidden.size(); ++i) {
      keep.push_back(hidden[i].select(0, 0).contiguous());
      w.add("hidden." + std::to_string(i), Dtype::f32, keep.back().shape(), keep.back().raw_data(),
            keep.back().nbytes());
    }
    w.write(a.out);
    std::printf("wrote %s\n", a.out.c_str());
  }
}

}  // namespace

void add_logits_command(CLI::App& app) {
  auto a = std::make_shared<LogitsArgs>();
  auto* cmd = app.add_subcommand("logits", "Print / save the logits of token ids (porting tool)");
  cmd->add_option("-m,--model", a->model, "Model folder or Hugging Face repo id")->required();
  cmd->add_option("--tokens", a->tokens, "Token ids, comma separated (e.g. 1,2,3)")->required();
  cmd->add_option("--out", a->out, "Write logits [tokens, vocab] (float32 safetensors)");
  cmd->add_option("--pixel-values", a->pixel_values,
                  "Image inputs of a vision-language model (safetensors: pixel_values [+ image_grid_thw], as "
                  "lmx preprocess writes them); --tokens then holds the expanded image placeholders");
  cmd->add_flag("--dump-hidden", a->dump_hidden, "Also write each layer's output (hidden.N)");
  cmd->add_option("-t,--threads", a->threads, "CPU threads");
  add_device_option(cmd, a->device);
  cmd->callback([a] { run_logits(*a); });
}

}  // namespace lmx::cli
