#include "vision_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_common.h"
#include "lmx/base/error.h"
#include "lmx/base/thread_pool.h"
#include "lmx/core/backend.h"
#include "lmx/core/ops/random.h"
#include "lmx/models/load.h"
#include "lmx/models/vlm/image_inputs.h"
#include "lmx/models/vlm/vision_language_model.h"
#include "lmx/tokenizer/tokenizer.h"
#include "lmx/vision/image_decode.h"
#include "lmx/vision/image_processor.h"

namespace lmx::cli {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

void run_vision_bench(const VisionBenchArgs& a) {
  apply_threads(a.threads);
  if (a.runs < 1 || a.prompt_tokens < 0) throw InvalidArgument("bench --image: -n must be >= 1, -p >= 0");
  const Device device = device_arg(a.device);
  Backend& backend = backend_for(device);
  const auto folder = resolve_model_arg(a.model);
  models::LoadedModel loaded = models::load_model(folder, models::LoadOptions{.device = device});
  auto* vlm = dynamic_cast<models::vlm::VisionLanguageModel*>(loaded.model.get());
  if (!vlm) throw InvalidArgument("bench --image: " + loaded.model->model_type() + " is not a vision-language model");
  auto processor = vision::load_image_processor(folder);
  // Image prompts of some families hold tokens of the vocabulary (Idefics3's rows).
  const tokenizer::Tokenizer tok = std::filesystem::exists(folder / "tokenizer.json")
                                       ? tokenizer::Tokenizer::from_folder(folder)
                                       : tokenizer::Tokenizer::from_json_text(
                                             R"({"model": {"type": "WordLevel", "vocab": {"a": 0}, "unk_token": "a"}})",
                                             {}, "bench tokenizer");
  const std::vector<int32_t> no_ids;
  ops::RandomGenerator rng(11);
  std::vector<double> decode_ms, process_ms, encoder_ms, prefill_ms, prefill_tps;
  int64_t image_tokens = 0, prompt_length = 0;
  std::vector<int64_t> shape;
  for (int run = 0; run <= a.runs; ++run) {  // run 0 warms up
    auto t0 = Clock::now();
    vision::Image image = vision::load_image(a.image);
    const double decode = ms_since(t0);
    t0 = Clock::now();
    const vision::ProcessorOutput out = processor->process({image});
    const double process = ms_since(t0);
    const models::vlm::ImageInputs inputs = models::vlm::image_inputs(out);
    t0 = Clock::now();
    const std::vector<Tensor> features = vlm->image_feature_stack(inputs);
    backend.synchronize();
    const double encoder = ms_since(t0);
    // Text tokens (never a placeholder) around the image's placeholders, in one call.
    const std::vector<int32_t> placeholders = vlm->image_prompt(inputs, 0, tok);
    std::vector<int32_t> ids;
    auto text = [&](int n) {
      for (int i = 0; i < n; ++i) {
        auto t = static_cast<int32_t>(rng.next_u64() % static_cast<uint64_t>(std::min<int64_t>(vlm->vocab_size(), 1000)));
        ids.push_back(t == vlm->image_token_id() || t == vlm->video_token_id() ? 1 : t);
      }
    };
    text(a.prompt_tokens / 2);
    ids.insert(ids.end(), placeholders.begin(), placeholders.end());
    text(a.prompt_tokens - a.prompt_tokens / 2);
    vlm->set_images(inputs);
    t0 = Clock::now();
    vlm->forward(Tensor::from_vector(ids, {1, static_cast<int64_t>(ids.size())}), nullptr, {nullptr, true});
    backend.synchronize();
    const double prefill = ms_since(t0);
    image_tokens = static_cast<int64_t>(placeholders.size());
    prompt_length = static_cast<int64_t>(ids.size());
    shape = out.tensors.at(0).shape;
    if (run == 0) continue;
    decode_ms.push_back(decode);
    process_ms.push_back(process);
    encoder_ms.push_back(encoder);
    prefill_ms.push_back(prefill);
    prefill_tps.push_back(static_cast<double>(ids.size()) / (prefill / 1000.0));
  }
  std::string shape_text;
  for (int64_t d : shape) {
    if (!shape_text.empty()) shape_text += 'x';
    shape_text += std::to_string(d);
  }
  if (a.json) {
    nlohmann::json j = {{"model", a.model}, {"image", a.image}, {"device", backend.describe()},
                        {"threads", ThreadPool::global().num_threads()}, {"runs", a.runs},
                        {"processor", std::string(processor->type())}, {"pixel_values", shape_text},
                        {"image_tokens", image_tokens}, {"prompt_tokens", prompt_length},
                        {"decode_ms", median(decode_ms)}, {"preprocess_ms", median(process_ms)},
                        {"vision_encoder_ms", median(encoder_ms)}, {"prefill_ms", median(prefill_ms)},
                        {"prefill_tps", median(prefill_tps)}};
    std::printf("%s\n", j.dump().c_str());
    return;
  }
  std::printf("model: %s  image: %s\ndevice: %s  threads: %d  runs: %d (medians)\n", a.model.c_str(), a.image.c_str(),
              backend.describe().c_str(), ThreadPool::global().num_threads(), a.runs);
  std::printf("image decode: %.2f ms\n", median(decode_ms));
  std::printf("image preprocessing (%s, pixel_values %s): %.2f ms\n", std::string(processor->type()).c_str(),
              shape_text.c_str(), median(process_ms));
  std::printf("vision encoder (%lld image tokens): %.2f ms\n", static_cast<long long>(image_tokens), median(encoder_ms));
  std::printf("prefill of %lld tokens with the image (encoder included): %.2f tokens/s (%.2f ms)\n",
              static_cast<long long>(prompt_length), median(prefill_tps), median(prefill_ms));
}

}  // namespace lmx::cli
