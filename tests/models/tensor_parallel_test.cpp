// Tensor parallelism's sharding (lmx/models/tensor_parallel.h) on the CPU: the ranks of a
// ThreadGroup, each a thread holding its shard of a fixture of tests/data/models, give the
// whole model's logits (prompt at once, and prompt then one decoding step through the
// caches) at 2 and 4 ranks, full precision and MLX 4-bit; what is not split is refused by
// name; a failing rank stops the others with its error.
#include <gtest/gtest.h>

#include <unistd.h>

#include <exception>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "parity_util.h"
#include "lmx/base/error.h"
#include "lmx/core/communicator.h"
#include "lmx/core/ops/shape.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/load.h"
#include "lmx/models/quantize.h"
#include "lmx/models/save.h"
#include "lmx/models/tensor_parallel.h"
#include "lmx/nn/kv_cache.h"
#include "vlm/growing_cache.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
using testing::read_tensor;
using testing::relative_error;

using testing::model_fixture;

struct Sharded {
  explicit Sharded(const fs::path& dir, int world) : group(world) {
    for (int r = 0; r < world; ++r) ranks.push_back(models::load_model_shard(dir, group.communicator(r)));
  }
  // rank r's model's result, each rank on its own thread.
  std::vector<Tensor> run(const std::function<Tensor(models::LanguageModel&)>& fn) {
    std::vector<Communicator*> comms;
    for (int r = 0; r < group.world(); ++r) comms.push_back(&group.communicator(r));
    return run_on_ranks(comms, [&](int r) { return fn(*ranks[static_cast<size_t>(r)].model); });
  }
  ThreadGroup group;
  std::vector<models::LoadedModel> ranks;
};

Tensor input_ids(const fs::path& dir) {
  return read_tensor(io::SafetensorsFile::open(dir / "reference.safetensors"), "input_ids").to(Dtype::i32);
}

// The whole model's logits against every rank's: the prompt at once, then all but the
// last token into caches and the last token alone.
void expect_ranks_equal_whole(const fs::path& dir, int world, double tol, const Tensor& ids) {
  models::LoadedModel whole = models::load_model(dir);
  const int64_t L = ids.dim(1);
  const Tensor want = whole.model->forward(ids, nullptr, {});
  Sharded sh(dir, world);
  const std::vector<Tensor> got = sh.run([&](models::LanguageModel& m) { return m.forward(ids, nullptr, {}); });
  for (int r = 0; r < world; ++r) {
    ASSERT_EQ(got[static_cast<size_t>(r)].shape(), want.shape()) << "rank " << r;
    EXPECT_LE(relative_error(got[static_cast<size_t>(r)], want), tol) << dir.filename() << " rank " << r << " of " << world;
  }
  // Prefill, then one decoding step through each rank's caches.
  const std::vector<Tensor> step = sh.run([&](models::LanguageModel& m) {
    nn::KVCacheList caches;
    for (int64_t l = 0; l < m.num_layers(); ++l) caches.push_back(std::make_unique<testing::GrowingCache>());
    m.forward(ids.slice(1, 0, L - 1).contiguous(), &caches, {});
    return m.forward(ids.slice(1, L - 1, L).contiguous(), &caches, {});
  });
  const Tensor last = want.slice(1, L - 1, L).contiguous();
  for (int r = 0; r < world; ++r) {
    EXPECT_LE(relative_error(step[static_cast<size_t>(r)], last), tol) << dir.filename() << " decode, rank " << r;
  }
  std::printf("%s at %d ranks: logits rel err %.2e (rank 0), decode step %.2e\n", dir.filename().c_str(), world,
              relative_error(got[0], want), relative_error(step[0], last));
}

class TensorParallel : public ::testing::TestWithParam<std::string> {};

// The split sums in another order than the whole model: f32 rounding apart.
TEST_P(TensorParallel, RanksGiveTheWholeModelsLogits) {
  for (int world : {2, 4}) {
    SCOPED_TRACE(world);
    expect_ranks_equal_whole(model_fixture(GetParam()), world, 2e-5, input_ids(model_fixture(GetParam())));
  }
}

// llama (GQA, kv heads split at 2 ranks and replicated at 4), qwen2 (q / k / v biases, tied
// head), qwen3 (per-head q / k norms), gemma2 (soft-capping, post norms, tied), phi3 (fused
// qkv and gate_up), gpt_neox (per-head fused qkv, parallel residual, plain MLP), starcoder2
// (plain MLP with biases: the row-parallel bias once), phi (head bias, LayerNorm q / k
// norms), gpt2 (learned positions, Conv1D weights), cohere (parallel residual, per-head
// q / k LayerNorms, tied head), stablelm (per-head q / k norms stored one per head).
INSTANTIATE_TEST_SUITE_P(Fixtures, TensorParallel,
                         ::testing::Values("llama", "qwen2", "qwen3", "gemma2", "phi3", "gpt_neox", "starcoder2",
                                           "phi", "gpt2", "cohere", "stablelm"));

// Mixtures of experts split by experts (expert parallelism): each rank holds 1 / world of
// the experts, routes every token as the whole model does and adds the chosen experts it
// holds; shared experts split as a dense MLP. mixtral, qwen3_moe, phimoe (routed experts
// only), qwen2_moe (a shared expert behind a sigmoid gate), glm4_moe (a dense first layer,
// a shared expert, sigmoid routing with a correction bias), ernie4_5_moe (a shared expert),
// gpt_oss (fused experts with biases, clamped SwiGLU, sinks), llama4_text (the routing weight
// on the expert's input), dbrx (its own naming): 2 and 4 ranks of 4 experts.
INSTANTIATE_TEST_SUITE_P(Experts, TensorParallel,
                         ::testing::Values("mixtral", "qwen3_moe", "phimoe", "qwen2_moe", "glm4_moe", "ernie4_5_moe",
                                           "gpt_oss", "llama4_text", "dbrx"));

// MLX 4-bit weights (group 32) split along whole groups: two ranks give the quantized
// whole model's logits; four would cut o_proj's 64 inputs (two groups) inside a group,
// which is refused by name.
TEST(TensorParallelQuantized, FourBitShardsGiveTheQuantizedWholeModelsLogits) {
  const fs::path dir = fs::temp_directory_path() / ("lmx-tp-q4-" + std::to_string(::getpid()));
  models::save_quantized_copy(model_fixture("llama"), dir, {.bits = 4, .group_size = 32});
  expect_ranks_equal_whole(dir, 2, 2e-5, input_ids(model_fixture("llama")));
  ThreadGroup four(4);
  try {
    models::load_model_shard(dir, four.communicator(0));
    ADD_FAILURE() << "a quantization group was cut";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("o_proj.scales has 2 columns, not divisible by 4"), std::string::npos)
        << e.what();
  }
  fs::remove_all(dir);
}

// MLX 4-bit experts (group 32) split by experts: the packed words, scales and biases of
// the stacked experts sliced along the expert axis.
TEST(TensorParallelQuantized, FourBitExpertsGiveTheQuantizedWholeModelsLogits) {
  const fs::path dir = fs::temp_directory_path() / ("lmx-tp-moe-q4-" + std::to_string(::getpid()));
  models::save_quantized_copy(model_fixture("mixtral"), dir, {.bits = 4, .group_size = 32});
  expect_ranks_equal_whole(dir, 2, 2e-5, input_ids(model_fixture("mixtral")));
  fs::remove_all(dir);
}

TEST(TensorParallelRefusals, WhatIsNotSplitIsNamed) {
  ThreadGroup group(2);
  try {
    models::load_model_shard(model_fixture("deepseek_v2"), group.communicator(0));
    FAIL() << "latent attention was split";
  } catch (const Unsupported& e) {
    EXPECT_NE(std::string(e.what()).find("latent attention is not split yet"), std::string::npos) << e.what();
  }
  // 4 heads over 3 ranks.
  ThreadGroup three(3);
  try {
    models::load_model_shard(model_fixture("llama"), three.communicator(1));
    FAIL() << "4 heads were split over 3 ranks";
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("attention heads (4) is not divisible by 3"), std::string::npos) << e.what();
  }
  // GPU ranks in a build without CUDA: the build is named.
  if (!built_with_cuda()) {
    try {
      models::load_model(model_fixture("llama"), {.device = Device::cuda(), .tensor_parallel = 2});
      FAIL() << "GPU ranks in a build without CUDA";
    } catch (const Unsupported& e) {
      EXPECT_NE(std::string(e.what()).find("not available in this build"), std::string::npos) << e.what();
    }
  }
  // A shard without its group, and a shard given another rank's communicator.
  models::LoadedModel r0 = models::load_model_shard(model_fixture("llama"), group.communicator(0));
  auto* tlm = dynamic_cast<models::TransformerLM*>(r0.model.get());
  ASSERT_NE(tlm, nullptr);
  EXPECT_THROW(tlm->set_communicator(&group.communicator(1)), InvalidArgument);
  tlm->set_communicator(nullptr);
  EXPECT_THROW(r0.model->forward(input_ids(model_fixture("llama")), nullptr, {}), InvalidArgument);
}

// A rank that fails mid-forward (here: a token id past the vocabulary on rank 1 only)
// stops the other rank with that error instead of leaving it waiting in a collective.
TEST(TensorParallelFailure, AFailingRankStopsTheOthers) {
  Sharded sh(model_fixture("llama"), 2);
  const Tensor ids = input_ids(model_fixture("llama"));
  const Tensor bad = Tensor::from_vector(std::vector<int32_t>{1, 2, 100000}, {1, 3});
  std::vector<std::string> seen(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      try {
        sh.ranks[static_cast<size_t>(r)].model->forward(r == 1 ? bad : ids, nullptr, {});
      } catch (const std::exception& e) {
        seen[static_cast<size_t>(r)] = e.what();
        sh.group.communicator(r).abort(e.what());
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_NE(seen[1].find("out of range"), std::string::npos) << seen[1];
  EXPECT_NE(seen[0].find("rank 1 of 2 failed"), std::string::npos) << seen[0];
  EXPECT_NE(seen[0].find("out of range"), std::string::npos) << seen[0];
}

}  // namespace
}  // namespace lmx
