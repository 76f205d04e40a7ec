// lmx generate: one prompt in, streamed text out (mlx-lm's generate options).
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli_common.h"
#include "constraint_options.h"
#include "generation_options.h"
#include "logprobs_output.h"
#include "wired_options.h"
#include "commands.h"
#include "lmx/base/error.h"
#include "lmx/generate/generate.h"
#include "lmx/generate/model_container.h"
#include "lmx/models/load.h"
#include "lmx/models/vlm/image_inputs.h"
#include "lmx/vision/image_decode.h"
#include "lmx/vision/video_processor.h"
#include "lmx/generate/prompt_cache.h"

namespace lmx::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::string adapter_path;
  std::string prompt = "";
  std::vector<std::string> images;
  std::vector<std::string> videos;
  double video_fps = 0;      // --fps: frames sampled per second of video
  int64_t video_frames = 0;  // --frames: frames sampled per video
  std::string system_prompt;
  GenerationArgs gen;
  bool ignore_chat_template = false;
  int threads = 0;
  std::string device = "cpu";
  int tensor_parallel = 1;
  bool verbose = false;
  std::string prompt_cache_file;
  std::string draft_model;  // speculative decoding
  int num_draft_tokens = 3;
  WiredArgs wired;
  ConstraintArgs constraint;
};

// Ctrl-C stops the generation at the next token (the stream then ends cleanly).
generate::Generation* g_generation = nullptr;

void on_sigint(int) {
  if (g_generation) g_generation->cancel();
}

// --image / --video: the images and videos through the model's processors, one image
// part per image and one video part per video before the prompt's text in the user
// message; returns the expanded prompt ids.
std::vector<int32_t> prepare_images(const GenerateArgs& a, generate::ModelContainer& container,
                                    generate::UserInput& input, generate::GenerateParameters& p) {
  const char* what = a.images.empty() ? "--video" : "--image";
  auto* vlm = dynamic_cast<models::vlm::VisionLanguageModel*>(&container.model());
  if (!vlm) throw InvalidArgument(std::string(what) + ": " + container.model().model_type() + " is not a vision-language model");
  if (a.ignore_chat_template || !container.has_chat_template()) {
    throw InvalidArgument(std::string(what) + " needs the model's chat template (it places the image and video markers)");
  }
  models::vlm::ImageInputs inputs;
  if (!a.images.empty()) {
    std::vector<vision::Image> images;
    for (const auto& path : a.images) images.push_back(vision::load_image(path));
    auto processor = vision::load_image_processor(resolve_model_arg(a.model));
    inputs = models::vlm::image_inputs(processor->process(images));
  }
  if (!a.videos.empty()) {
    if (vlm->video_token_id() < 0) throw InvalidArgument("--video: " + vlm->model_type() + " takes no videos");
    auto processor = vision::load_video_processor(resolve_model_arg(a.model));
    const vision::FrameSampling sampling{.fps = a.video_fps, .num_frames = a.video_frames};
    std::vector<vision::Video> videos;
    for (const auto& path : a.videos) videos.push_back(vision::load_sampled_video(path, *processor, sampling));
    models::vlm::add_video_inputs(inputs, processor->process(videos),
                                  vision::seconds_per_grid(videos, *processor));
    for (const auto& v : videos) inputs.video_timestamps.push_back(processor->timestamps(v));
  }
  nlohmann::ordered_json content = nlohmann::ordered_json::array();
  for (size_t i = 0; i < a.images.size(); ++i) content.push_back({{"type", "image"}});
  for (size_t i = 0; i < a.videos.size(); ++i) content.push_back({{"type", "video"}});
  content.push_back({{"type", "text"}, {"text", input.prompt}});
  input.messages = std::make_shared<nlohmann::ordered_json>(
      nlohmann::ordered_json::array({{{"role", "user"}, {"content", content}}}));
  std::vector<int32_t> ids =
      models::vlm::expand_image_prompt(*vlm, container.prepare(input), inputs, container.tokenizer());
  // The image tokens' positions and blocks are set up for the whole prompt in one step.
  p.prefill_step_size = std::max<int>(p.prefill_step_size, static_cast<int>(ids.size()));
  vlm->set_images(std::move(inputs));
  return ids;
}

void run_generate(const GenerateArgs& a) {
  apply_threads(a.threads);
  const Device device = device_arg(a.device);
  // The options are checked before the model loads.
  generate::GenerateParameters p = to_parameters(a.gen);
  generate::GenerateOptions opts;
  opts.stop_strings = stop_strings(a.gen);
  std::string prompt = a.prompt;
  if (prompt == "-") prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  auto container =
      load_model_with_adapters(a.model, {.device = device, .tensor_parallel = a.tensor_parallel}, a.adapter_path);
  std::optional<models::LoadedModel> draft;
  if (!a.draft_model.empty()) {
    draft.emplace(models::load_model(resolve_model_arg(a.draft_model), models::LoadOptions{.device = device}));
    opts.iterator.speculative = {draft->model.get(), a.num_draft_tokens};
  }
  generate::UserInput input;
  input.prompt = prompt;
  input.system_prompt = a.system_prompt;
  input.ignore_chat_template = a.ignore_chat_template;
  nlohmann::ordered_json variables = chat_template_variables(a.gen);
  if (!variables.is_null()) input.extra_context = std::make_shared<nlohmann::ordered_json>(std::move(variables));
  std::optional<generate::PromptCache> cached;
  std::vector<int32_t> ids;
  if (!a.images.empty() || !a.videos.empty()) {
    if (!a.prompt_cache_file.empty() || draft) {
      throw InvalidArgument("--image and --video take neither --prompt-cache-file nor --draft-model yet");
    }
    ids = prepare_images(a, *container, input, p);
  } else if (!a.prompt_cache_file.empty()) {
    // The cache holds the earlier tokens (BOS included): the prompt continues them.
    // Matched by the weights' fingerprint, not by the --model text.
    cached.emplace(generate::load_prompt_cache(
        a.prompt_cache_file, {{generate::ModelContainer::kFingerprintKey, container->fingerprint()}}));
    ids = encode_warning_on_invalid_utf8(container->tokenizer(), prompt, false, "the prompt");
    if (ids.empty()) throw InvalidArgument("--prompt-cache-file: give a --prompt to continue the cached one");
  } else {
    // prepare() reads invalid UTF-8 as U+FFFD too; the check only warns.
    encode_warning_on_invalid_utf8(container->tokenizer(), prompt, false, "the prompt");
    ids = container->prepare(input);
  }
  if (a.verbose) {
    std::fprintf(stderr, "==========\n");
    if (container->has_chat_template() && !a.ignore_chat_template) {
      std::fprintf(stderr, "%s\n==========\n", container->render_prompt(input).c_str());
    }
  }
  const int64_t cached_tokens = cached && !cached->cache.empty() ? cached->cache[0]->offset() : 0;
  check_against_model(a.gen, *container, cached_tokens + static_cast<int64_t>(ids.size()));
  add_output_constraint(a.constraint, *container, p);
  opts.eos_ids = container->eos_ids(a.gen.extra_eos);
  opts.iterator.on_prefill_progress = show_prefill_progress;
  std::optional<LogprobsOutput> logprobs;
  if (a.gen.top_logprobs) {
    logprobs.emplace(a.gen.logprobs_file, container->tokenizer());
    opts.token_events = true;
  }
  generate::GenerationInfo info;
  WiredLog wired_log(a.verbose);
  container->perform([&](models::LanguageModel& model, const tokenizer::Tokenizer& tok) {
    opts.iterator.wired_ticket = make_wired_ticket(a.wired, model, static_cast<int64_t>(ids.size()), p);
    generate::Generation gen(model, tok, ids, p, opts, cached ? &cached->cache : nullptr);
    g_generation = &gen;
    std::signal(SIGINT, on_sigint);
    struct RestoreSigint {  // also when writing to stdout fails mid-stream
      ~RestoreSigint() {
        std::signal(SIGINT, SIG_DFL);
        g_generation = nullptr;
      }
    } restore;
    while (auto e = gen.next()) {
      if (e->kind == generate::GenerationEvent::Kind::text) {
        write_stdout(e->text);
      } else if (e->kind == generate::GenerationEvent::Kind::token) {
        if (logprobs) logprobs->write(e->token);
      } else if (e->kind == generate::GenerationEvent::Kind::info) {
        info = e->info;
      }
    }
  });
  write_stdout("\n");
  if (logprobs) logprobs->finish();
  if (a.verbose) {
    std::fprintf(stderr, "==========\n");
    std::fprintf(stderr, "Prompt: %lld tokens, %.3f tokens-per-sec\n", static_cast<long long>(info.prompt_tokens),
                 info.prompt_tps);
    std::fprintf(stderr, "Generation: %lld tokens, %.3f tokens-per-sec\n",
                 static_cast<long long>(info.generated_tokens), info.generation_tps);
    if (info.draft_tokens > 0) {
      std::fprintf(stderr, "Speculative: %lld of %lld draft tokens accepted (%.1f%%)\n",
                   static_cast<long long>(info.accepted_draft_tokens), static_cast<long long>(info.draft_tokens),
                   100.0 * static_cast<double>(info.accepted_draft_tokens) / static_cast<double>(info.draft_tokens));
    }
    std::fprintf(stderr, "Peak memory: %s\n", format_bytes(info.peak_memory_bytes).c_str());
    std::fprintf(stderr, "Stop reason: %s\n", generate::stop_reason_name(info.stop_reason));
    wired_log.flush();
  }
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto a = std::make_shared<GenerateArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate text from a prompt");
  cmd->add_option("-m,--model", a->model, "Model folder or Hugging Face repo id")->required();
  add_adapter_path_option(cmd, a->adapter_path);
  cmd->add_option("-p,--prompt", a->prompt, "Prompt text, or - to read it from stdin");
  cmd->add_option("--image", a->images, "An image for a vision-language model (file or data URL); repeatable");
  cmd->add_option("--video", a->videos, "A video file for a Qwen2-VL-family model (FFmpeg decodes it); repeatable");
  auto* fps = cmd->add_option("--fps", a->video_fps, "--video: sample this many frames per second of video")
                  ->check(CLI::PositiveNumber);
  cmd->add_option("--frames", a->video_frames, "--video: sample this many frames (whole temporal patches)")
      ->check(CLI::PositiveNumber)
      ->excludes(fps);
  cmd->add_option("--system-prompt", a->system_prompt, "System message (chat models)");
  add_sampling_options(cmd, a->gen);
  cmd->add_flag("--ignore-chat-template", a->ignore_chat_template, "Use the prompt as raw text");
  add_cache_options(cmd, a->gen);
  add_wired_options(cmd, a->wired);
  add_constraint_options(cmd, a->constraint);
  cmd->add_option("--prompt-cache-file", a->prompt_cache_file, "Continue from a prompt cache (lmx cache-prompt)");
  cmd->add_option("--draft-model", a->draft_model,
                  "Speculative decoding: a smaller model with the same tokenizer drafts tokens that the model verifies");
  cmd->add_option("--num-draft-tokens", a->num_draft_tokens, "Tokens drafted per step with --draft-model")
      ->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "CPU threads (default: all cores)");
  add_device_option(cmd, a->device);
  add_tensor_parallel_option(cmd, a->tensor_parallel);
  cmd->add_flag("-v,--verbose", a->verbose, "Print the prompt and speed / memory statistics");
  cmd->callback([a] { run_generate(*a); });

  auto c = std::make_shared<GenerateArgs>();
  auto* cache = app.add_subcommand("cache-prompt", "Prefill a prompt once and save its KV cache to a file");
  cache->add_option("-m,--model", c->model, "Model folder or Hugging Face repo id")->required();
  cache->add_option("-p,--prompt", c->prompt, "Prompt text, or - to read it from stdin")->required();
  cache->add_option("--prompt-cache-file", c->prompt_cache_file, "Where to write the cache (safetensors)")->required();
  add_cache_options(cache, c->gen);
  cache->add_option("-t,--threads", c->threads, "CPU threads");
  add_device_option(cache, c->device);
  add_tensor_parallel_option(cache, c->tensor_parallel);
  cache->callback([c] {
    apply_threads(c->threads);
    const Device device = device_arg(c->device);
    std::string prompt = c->prompt;
    if (prompt == "-") prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    auto container = generate::ModelContainer::load(resolve_model_arg(c->model).string(),
                                                    {.device = device, .tensor_parallel = c->tensor_parallel});
    std::vector<int32_t> ids = container->tokenizer().encode(prompt, true);
    auto kv = container->perform([&](models::LanguageModel& model, const tokenizer::Tokenizer&) {
      return generate::prefill_cache(model, ids, to_parameters(c->gen), show_prefill_progress);
    });
    generate::save_prompt_cache(
        c->prompt_cache_file, kv,
        {{"model", c->model}, {generate::ModelContainer::kFingerprintKey, container->fingerprint()}});
    std::printf("cached %zu prompt tokens in %s\n", ids.size(), c->prompt_cache_file.c_str());
  });
}

}  // namespace lmx::cli
