// Real training on a real model: LoRA on stories260K (llama2.c's checkpoint imported into
// an HF folder) over a small set of stories made here, plus the dataset reader on its
// tokenizer (records, prompt masking, padding, bad lines).
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "lmx/base/thread_pool.h"
#include "lmx/train/adapter_file.h"
#include "lmx/train/trainer.h"
#include "tests/generate/test_models.h"
#include "tests/train/train_fixtures.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;

using testing::TempDir;

// Short stories of one fixed pattern with varied names, things and places: a model that
// learns the pattern predicts most tokens of an unseen line.
std::string stories(int count, int first) {
  const char* names[] = {"Lily", "Tom", "Sue", "Ben", "Mia", "Sam", "Anna", "Max"};
  const char* things[] = {"ball", "kite", "cat", "dog", "box", "cake", "toy", "hat"};
  const char* colors[] = {"red", "blue", "green", "big", "small", "yellow"};
  const char* places[] = {"park", "garden", "house", "forest", "school"};
  std::string out;
  for (int i = first; i < first + count; ++i) {
    const std::string n = names[i % 8], t = things[(i / 8) % 8], c = colors[(i / 3) % 6], p = places[(i / 5) % 5];
    nlohmann::json rec = {{"text", n + " had a " + c + " " + t + ". " + n + " took the " + t + " to the " + p +
                                       ". " + n + " was happy with the " + c + " " + t + "."}};
    out += rec.dump() + "\n";
  }
  return out;
}

// A 260K-parameter model's ops are too small to share among threads: one thread is
// faster, and immune to a busy machine's stalled workers.
struct OneThread {
  OneThread() { ThreadPool::set_global_threads(1); }
  ~OneThread() { ThreadPool::set_global_threads(0); }
};

// stories260K with 240 training and 40 validation stories, on one thread.
struct StoriesRun {
  OneThread one;
  std::shared_ptr<generate::ModelContainer> container = testing::stories260k();
  models::TransformerLM& model = dynamic_cast<models::TransformerLM&>(container->model());
  TempDir tmp;
  std::vector<train::Example> train_set = train::load_jsonl(tmp.write("train.jsonl", stories(240, 0)), *container);
  std::vector<train::Example> valid_set = train::load_jsonl(tmp.write("valid.jsonl", stories(40, 1000)), *container);
};

TEST(Stories260KLora, ValidationLossDropsAndAdaptersRoundTrip) {
  LMX_REQUIRE_STORIES();
  StoriesRun run;
  auto& [one, container, model, tmp, train_set, valid_set] = run;
  ASSERT_EQ(train_set.size(), 240u);

  train::LoraConfig lc;
  lc.rank = 8;
  lc.num_layers = -1;
  train::LoraAdapters adapters = train::make_lora(model, lc, 0);
  train::DifferentiableTransformer dt(model);
  train::TrainOptions o;
  o.batch_size = 4;
  o.iters = 80;
  o.steps_per_report = 20;
  o.steps_per_eval = 40;
  o.val_batches = -1;
  o.save_every = 40;
  o.seed = 3;
  o.schedule = {train::ScheduleKind::cosine, 5e-4f, 5, 80, 5e-5f};
  o.optimizer.kind = train::OptimizerKind::adamw;
  o.adapter_path = tmp.path / "adapters";
  std::vector<train::TrainReport> reports;
  train::TrainResult r = train::train(dt, adapters, train_set, valid_set, o, [&](const train::TrainReport& rep) {
    reports.push_back(rep);
  });
  std::printf("stories260K LoRA: validation loss %.4f -> %.4f over %lld iterations\n", r.initial_validation_loss,
              r.final_validation_loss, static_cast<long long>(r.iterations));
  // The margin: the pattern is learnable, so the loss per token on unseen lines falls to
  // less than half (measured: 2.22 -> 0.39).
  EXPECT_LT(r.final_validation_loss, r.initial_validation_loss * 0.5);
  int train_reports = 0;
  for (const auto& rep : reports) {
    if (rep.kind != train::TrainReport::Kind::train) continue;
    ++train_reports;
    EXPECT_GT(rep.tokens_per_second, 0.0);
    EXPECT_GT(rep.peak_memory, 0u);
  }
  EXPECT_EQ(train_reports, 4);
  EXPECT_TRUE(fs::exists(o.adapter_path / "0000040_adapters.safetensors"));

  // The saved adapters, attached to the model for inference, give the trained model's loss.
  train::LoraAdapters loaded = train::load_adapters(o.adapter_path, model);
  const double reloaded = train::evaluate(dt, &loaded, valid_set, 4, -1, 2048, false);
  EXPECT_NEAR(reloaded, r.final_validation_loss, 1e-5);
  loaded.attach(model);
  train::LoraAdapters::detach(model);
}

// DoRA and full fine-tuning (with Adafactor and accumulated gradients) learn the pattern
// too, and their saved files give the trained model's loss back.
TEST(Stories260KLora, DoraAndFullFineTuningLowerTheValidationLoss) {
  LMX_REQUIRE_STORIES();
  StoriesRun run;
  auto& [one, container, model, tmp, train_set, valid_set] = run;
  train::DifferentiableTransformer dt(model);
  for (auto type : {train::FineTuneType::dora, train::FineTuneType::full}) {
    train::LoraAdapters a =
        train::make_lora(model, testing::tuning(type, type == train::FineTuneType::full ? 2 : -1), 0);
    train::TrainOptions o;
    o.iters = 40;
    o.steps_per_eval = 0;
    o.val_batches = -1;
    o.save_every = 0;
    o.seed = 3;
    o.adapter_path = tmp.path / train::fine_tune_type_name(type);
    if (type == train::FineTuneType::dora) {
      o.schedule.peak = 5e-4f;
      o.optimizer.kind = train::OptimizerKind::adamw;
    } else {
      o.schedule.peak = 1e-3f;
      o.optimizer.kind = train::OptimizerKind::adafactor;
      o.optimizer.weight_decay = 0.0f;
      o.grad_accumulation_steps = 2;
    }
    const train::TrainResult r = train::train(dt, a, train_set, valid_set, o);
    std::printf("stories260K %s: validation loss %.4f -> %.4f over %lld batches\n", train::fine_tune_type_name(type),
                r.initial_validation_loss, r.final_validation_loss, static_cast<long long>(r.iterations));
    // Measured: DoRA 2.22 -> 0.66, full (last 2 blocks, Adafactor, 20 updates) 2.22 -> 0.95.
    EXPECT_LT(r.final_validation_loss, r.initial_validation_loss * 0.6) << train::fine_tune_type_name(type);
    train::LoraAdapters loaded = train::load_adapters(o.adapter_path, model);
    EXPECT_NEAR(train::evaluate(dt, &loaded, valid_set, 4, -1, 2048, false), r.final_validation_loss, 1e-5);
  }
}

TEST(Stories260KLora, TheSameSeedGivesTheSameAdapters) {
  LMX_REQUIRE_STORIES();
  OneThread one;
  auto container = testing::stories260k();
  auto& model = dynamic_cast<models::TransformerLM&>(container->model());
  TempDir tmp;
  const auto data = train::load_jsonl(tmp.write("train.jsonl", stories(24, 0)), *container);
  train::DifferentiableTransformer dt(model);
  auto run = [&](uint64_t seed) {
    train::LoraConfig lc;
    lc.num_layers = 2;
    lc.dropout = 0.1f;
    train::LoraAdapters a = train::make_lora(model, lc, seed);
    train::TrainOptions o;
    o.iters = 5;
    o.seed = seed;
    o.schedule.peak = 1e-3f;
    train::train(dt, a, data, data, o);
    std::vector<float> all;
    for (auto* p : a.parameters()) {
      auto v = p->value().to_float_vector();
      all.insert(all.end(), v.begin(), v.end());
    }
    return all;
  };
  const auto first = run(7);
  EXPECT_EQ(first, run(7));
  EXPECT_NE(first, run(8));
}

TEST(Stories260KLora, ANanLossStopsAndKeepsTheLastSavedAdapters) {
  LMX_REQUIRE_STORIES();
  OneThread one;
  auto container = testing::stories260k();
  auto& model = dynamic_cast<models::TransformerLM&>(container->model());
  TempDir tmp;
  const auto data = train::load_jsonl(tmp.write("train.jsonl", stories(16, 0)), *container);
  train::DifferentiableTransformer dt(model);
  train::LoraConfig lc;
  lc.num_layers = 1;
  train::LoraAdapters a = train::make_lora(model, lc, 1);
  train::TrainOptions o;
  o.iters = 2;
  o.schedule.peak = 1e-3f;
  o.adapter_path = tmp.path / "adapters";
  train::train(dt, a, data, data, o);
  auto read = [&] {
    std::ifstream f(o.adapter_path / "adapters.safetensors", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  const std::string saved = read();
  // A diverged adapter (as a too-large learning rate leaves one): the next loss is NaN.
  auto& pair = a.layers.begin()->second;
  std::vector<float> v = pair.b.value().to_float_vector();
  v[0] = std::numeric_limits<float>::quiet_NaN();
  pair.b.set_value(Tensor::from_vector(v, pair.b.shape()));
  o.save_every = 1;
  try {
    train::train(dt, a, data, data, o);
    FAIL() << "expected the NaN loss to stop training";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("training stopped at iteration 1: the loss is nan"), std::string::npos) << msg;
    EXPECT_NE(msg.find("are kept"), std::string::npos) << msg;
  }
  EXPECT_EQ(read(), saved);
}

TEST(Stories260KDataset, RecordsMaskingAndPadding) {
  LMX_REQUIRE_STORIES();
  auto container = testing::stories260k();
  TempDir tmp;
  const auto data = train::load_jsonl(
      tmp.write("train.jsonl", "{\"prompt\": \"Once upon a time\", \"completion\": \" there was a cat.\"}\n\n"
                               "{\"text\": \"Tom ran.\"}\n"),
      *container);
  ASSERT_EQ(data.size(), 2u);
  const auto& tok = container->tokenizer();
  const auto prompt = tok.encode("Once upon a time");
  EXPECT_EQ(data[0].prompt_len, static_cast<int64_t>(prompt.size()));
  EXPECT_EQ(data[0].tokens.back(), *tok.eos_id());
  EXPECT_EQ(data[1].prompt_len, 0);

  const auto batches = train::length_sorted_batches(data, 2);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0][0], 1u);  // shortest first
  train::Batch b = train::make_batch(data, {0, 1}, 2048, /*mask_prompt=*/true);
  const int64_t T = static_cast<int64_t>(data[0].tokens.size()) - 1;
  EXPECT_EQ(b.inputs.shape(), (Shape{2, T}));
  const auto w = b.weights.to_float_vector();
  const auto targets = b.targets.to_int_vector();
  // Row 0: the prompt's targets are masked, the completion's count.
  for (int64_t t = 0; t < T; ++t) EXPECT_EQ(w[t], t + 1 >= data[0].prompt_len ? 1.0f : 0.0f) << t;
  for (int64_t t = 0; t < T; ++t) EXPECT_EQ(targets[t], data[0].tokens[t + 1]);
  // Row 1: right padding carries no weight.
  const int64_t len1 = static_cast<int64_t>(data[1].tokens.size()) - 1;
  for (int64_t t = 0; t < T; ++t) EXPECT_EQ(w[T + t], t < len1 ? 1.0f : 0.0f) << t;
  // Truncation to max_seq_length.
  EXPECT_EQ(train::count_longer_than(data, 4), 2);
  EXPECT_EQ(train::make_batch(data, {0, 1}, 4, false).inputs.shape(), (Shape{2, 3}));
  EXPECT_THROW(train::length_sorted_batches(data, 3), InvalidArgument);
}

TEST(Stories260KDataset, BadFilesNameTheLine) {
  LMX_REQUIRE_STORIES();
  auto container = testing::stories260k();
  TempDir tmp;
  auto expect_format_error = [&](const std::string& content, const std::string& want) {
    try {
      train::load_jsonl(tmp.write("bad.jsonl", content), *container);
      ADD_FAILURE() << "no error for: " << content;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  expect_format_error("{\"text\": \"a b c\"}\n{\"text\": \"a b\"\n", "bad.jsonl:2: not valid JSON");
  expect_format_error("{\"text\": \"a\", \"w\": 1e999999}\n", "bad.jsonl:1: not valid JSON");  // overflow
  expect_format_error("{\"text\": \"a\"}\n\n{\"foo\": 1}\n", "bad.jsonl:3: a record needs");
  expect_format_error("{\"text\": 5}\n", "bad.jsonl:1: \"text\" must be a string");
  expect_format_error("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}\n", "need a model with a chat template");
  expect_format_error("\n\n", "the dataset file has no records");
  EXPECT_THROW(train::load_jsonl(tmp.path / "missing.jsonl", *container), IoError);
}

}  // namespace
}  // namespace lmx
