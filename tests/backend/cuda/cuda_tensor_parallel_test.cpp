// GPU ranks with NCCL (lmx::DeviceGroup over lmx/backend/cuda/nccl_group.h): one rank on
// the first GPU (any machine with a GPU), a split model of one rank on it generating the
// whole model's tokens, and, where several GPUs are visible, every GPU a rank: the
// collectives against the CPU's sums, a fixture split across the GPUs against the whole
// model on the CPU, and greedy tokens of the split model (TensorParallelLM) equal to one
// GPU's. Fewer than two GPUs: those tests say so and are skipped.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cuda_test_util.h"
#include "lmx/backend/cuda/collective_watchdog.h"
#include "lmx/backend/cuda/cuda_backend.h"
#include "lmx/base/error.h"
#include "lmx/core/communicator.h"
#include "lmx/core/ops/shape.h"
#include "lmx/generate/generate.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/load.h"
#include "lmx/models/tensor_parallel.h"
#include "lmx/models/tensor_parallel_model.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
using testing::random_tensor;

class NcclGroupTest : public testing::CudaTest {};

std::vector<float> host(const Tensor& t) { return t.to(Device::cpu()).to_float_vector(); }

std::vector<Device> gpus(int n) {
  std::vector<Device> d;
  for (int i = 0; i < n; ++i) d.push_back(Device::cuda(i));
  return d;
}

// Greedy tokens of `model` after the fixture's prompt ids.
std::vector<int32_t> greedy(models::LanguageModel& model, const std::vector<int32_t>& prompt, int n) {
  generate::GenerateParameters p;
  p.temperature = 0;
  p.max_tokens = n;
  auto gen = generate::generate_tokens(model, prompt, p);
  std::vector<int32_t> out;
  while (auto t = gen.next()) out.push_back(t->token);
  return out;
}

// The fixture's prompt (reference.safetensors' input_ids, i32 on the CPU).
Tensor input_ids(const fs::path& dir) {
  auto ref = io::SafetensorsFile::open(dir / "reference.safetensors");
  const io::TensorInfo& info = ref.at("input_ids");
  return Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, ref.owner()).to(Dtype::i32);
}

std::vector<int32_t> prompt_of(const fs::path& dir) {
  const Tensor ids = input_ids(dir);
  const int32_t* p = ids.data<int32_t>();
  return std::vector<int32_t>(p, p + ids.numel());
}

TEST_F(NcclGroupTest, OneRankReturnsItsOwnTensors) {
  DeviceGroup group({Device::cuda(0)});
  Communicator& c = group.communicator(0);
  EXPECT_EQ(c.world(), 1);
  const Tensor x = random_tensor({3, 5, 7}, 11);
  EXPECT_EQ(host(c.all_reduce_sum(x.to(Device::cuda()))), x.to_float_vector());
  const Tensor g = c.all_gather_last(x.to(Device::cuda()));
  EXPECT_EQ(g.shape(), x.shape());
  EXPECT_EQ(host(g), x.to_float_vector());
  EXPECT_THROW(c.all_reduce_sum(x), InvalidArgument);  // on the host
  EXPECT_THROW(DeviceGroup({Device::cuda(0), Device::cuda(0)}), InvalidArgument);
  // A device past the machine's: the backend's own refusal, as for any op on it.
  EXPECT_THROW(DeviceGroup({Device::cuda(cuda::device_count())}), Unsupported);
  EXPECT_THROW(DeviceGroup({Device::cpu()}), Unsupported);  // the CPU's ranks are a ThreadGroup
}

// A host function queued on a stream holds the stream's later work until open (30 s at most):
// a collective that does not finish, on one GPU.
struct StreamGate {
  std::atomic<bool> open{false};
  static void CUDART_CB hold(void* self) {
    auto* gate = static_cast<StreamGate*>(self);
    for (int i = 0; i < 30000 && !gate->open.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
};

cudaStream_t first_stream() { return static_cast<cudaStream_t>(cuda::device_stream(0)); }

TEST_F(NcclGroupTest, WatchdogNamesTheCollectiveStuckPastTheTimeoutOnce) {
  std::mutex m;
  std::vector<std::string> fired;
  {
    cuda::CollectiveWatchdog dog(std::chrono::milliseconds(200), [&](const std::string& reason) {
      std::lock_guard<std::mutex> lock(m);
      fired.push_back(reason);
    });
    dog.queued(0, first_stream(), "rank 0's quick op");  // nothing ahead of it: finishes in time
    ASSERT_EQ(cudaStreamSynchronize(first_stream()), cudaSuccess);
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    {
      std::lock_guard<std::mutex> lock(m);
      EXPECT_TRUE(fired.empty());
    }
    StreamGate gate;
    ASSERT_EQ(cudaLaunchHostFunc(first_stream(), StreamGate::hold, &gate), cudaSuccess);
    dog.queued(0, first_stream(), "rank 0's ncclAllReduce");
    dog.queued(0, first_stream(), "rank 0's ncclAllGather");
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    gate.open = true;
    ASSERT_EQ(cudaStreamSynchronize(first_stream()), cudaSuccess);
  }
  ASSERT_EQ(fired.size(), 1u);  // the first late collective, once
  EXPECT_NE(fired[0].find("rank 0's ncclAllReduce has not finished on cuda:0"), std::string::npos) << fired[0];
  EXPECT_NE(fired[0].find("timeout 0.2"), std::string::npos) << fired[0];
}

// The group's timeout: a collective held on its GPU past LMX_TP_TIMEOUT_SECONDS aborts the
// NCCL group, and the rank's next collective throws the reason (not a hang).
TEST_F(NcclGroupTest, ACollectiveStuckPastTheTimeoutAbortsTheGroup) {
  testing::ScopedEnv timeout("LMX_TP_TIMEOUT_SECONDS", "0.3");
  DeviceGroup group({Device::cuda(0)});
  Communicator& c = group.communicator(0);
  const Tensor x = random_tensor({64}, 5).to(Device::cuda());
  EXPECT_EQ(host(c.all_reduce_sum(x)), x.to(Device::cpu()).to_float_vector());  // in time
  StreamGate gate;
  ASSERT_EQ(cudaLaunchHostFunc(first_stream(), StreamGate::hold, &gate), cudaSuccess);
  c.all_reduce_sum(x);  // queued behind the gate
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  gate.open = true;
  cudaStreamSynchronize(first_stream());  // the aborted collective may leave an error
  cudaGetLastError();
  try {
    c.all_reduce_sum(x);
    ADD_FAILURE() << "a collective after the timeout ran";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 0's ncclAllReduce has not finished"), std::string::npos) << e.what();
  }
}

// A split model of one GPU rank (the NCCL group made at load, its communicator in every
// layer, generation's caches wrapped per rank) generates the whole model's greedy tokens on
// that GPU: the wiring that several GPUs use, on any machine with one.
TEST_F(NcclGroupTest, OneRankSplitModelGeneratesTheWholeModelsTokens) {
  for (const char* name : {"llama", "qwen2"}) {
    SCOPED_TRACE(name);
    const fs::path dir = testing::model_fixture(name);
    if (!fs::exists(dir / "reference.safetensors")) GTEST_SKIP() << "no fixture at " << dir;
    const std::vector<int32_t> prompt = prompt_of(dir);
    models::LoadedModel whole = models::load_model(dir, {.device = Device::cuda()});
    auto split = models::TensorParallelLM::load(dir, {.device = Device::cuda(), .tensor_parallel = 1});
    EXPECT_EQ(greedy(*split, prompt, 24), greedy(*whole.model, prompt, 24));
  }
}

class NcclGroupMultiGpu : public testing::CudaTest {
 protected:
  void SetUp() override {
    testing::CudaTest::SetUp();
    if (cuda::device_count() < 2) GTEST_SKIP() << "needs 2 or more GPUs, " << cuda::device_count() << " visible";
  }
  int world() const { return std::min(cuda::device_count(), 4); }
};

TEST_F(NcclGroupMultiGpu, CollectivesEqualTheHostsSumsAndOrder) {
  DeviceGroup group(gpus(world()));
  std::vector<Communicator*> comms;
  for (int r = 0; r < world(); ++r) comms.push_back(&group.communicator(r));
  std::vector<Tensor> xs;
  for (int r = 0; r < world(); ++r) xs.push_back(random_tensor({4, 6}, 100 + r));
  const std::vector<Tensor> sums = run_on_ranks(comms, [&](int r) {
    return comms[r]->all_reduce_sum(xs[r].to(Device::cuda(r))).to(Device::cpu());
  });
  std::vector<float> want(24, 0.0f);
  for (const Tensor& x : xs) {
    const auto v = x.to_float_vector();
    for (size_t i = 0; i < v.size(); ++i) want[i] += v[i];
  }
  for (const Tensor& s : sums) {
    const auto v = s.to_float_vector();
    for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], want[i], 1e-5f);
  }
  const std::vector<Tensor> gathered = run_on_ranks(comms, [&](int r) {
    return comms[r]->all_gather_last(xs[r].to(Device::cuda(r))).to(Device::cpu());
  });
  const Tensor joined = ops::concat(xs, 1);
  for (const Tensor& g : gathered) EXPECT_EQ(g.to_float_vector(), joined.to_float_vector());
}

// A fixture split across the GPUs, one rank each, gives the whole model's CPU logits.
TEST_F(NcclGroupMultiGpu, ShardsOnTheGpusGiveTheWholeModelsLogits) {
  const int w = world() >= 4 ? 4 : 2;
  for (const char* name : {"llama", "qwen2", "gemma2"}) {
    SCOPED_TRACE(name);
    const fs::path dir = testing::model_fixture(name);
    if (!fs::exists(dir / "reference.safetensors")) GTEST_SKIP() << "no fixture at " << dir;
    models::LoadedModel whole = models::load_model(dir);
    const Tensor input = input_ids(dir);
    const Tensor want = whole.model->forward(input, nullptr, {});
    DeviceGroup group(gpus(w));
    std::vector<Communicator*> comms;
    std::vector<models::LoadedModel> ranks;
    for (int r = 0; r < w; ++r) {
      comms.push_back(&group.communicator(r));
      ranks.push_back(models::load_model_shard(dir, group.communicator(r), {.device = Device::cuda(r)}));
    }
    const std::vector<Tensor> got = run_on_ranks(comms, [&](int r) {
      return ranks[static_cast<size_t>(r)].model->forward(input, nullptr, {}).to(Device::cpu());
    });
    for (const Tensor& g : got) EXPECT_LE(testing::relative_error(g, want), 1e-4);
  }
}

// The split model over 2 (and 4) GPUs generates one GPU's greedy tokens.
TEST_F(NcclGroupMultiGpu, SplitModelGeneratesOneGpusTokens) {
  for (const char* name : {"llama", "qwen2", "gemma2"}) {
    SCOPED_TRACE(name);
    const fs::path dir = testing::model_fixture(name);
    if (!fs::exists(dir / "reference.safetensors")) GTEST_SKIP() << "no fixture at " << dir;
    const std::vector<int32_t> prompt = prompt_of(dir);
    models::LoadedModel whole = models::load_model(dir, {.device = Device::cuda()});
    const std::vector<int32_t> want = greedy(*whole.model, prompt, 24);
    for (int w : {2, 4}) {
      if (w > world()) break;
      SCOPED_TRACE(w);
      models::LoadedModel split = models::load_model(dir, {.device = Device::cuda(), .tensor_parallel = w});
      EXPECT_EQ(greedy(*split.model, prompt, 24), want);
    }
  }
}

}  // namespace
}  // namespace lmx
