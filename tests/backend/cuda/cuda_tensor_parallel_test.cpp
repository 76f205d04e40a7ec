// The NCCL communicator (lmx/backend/cuda/nccl_group.h): one rank on the first GPU (any
// machine with a GPU), and, where several GPUs are visible, every GPU a rank: the
// collectives against the CPU's sums, and a fixture split across the GPUs against the
// whole model on the CPU. Fewer than two GPUs: those tests say so and are skipped.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <vector>

#include "cuda_test_util.h"
#include "lmx/backend/cuda/nccl_group.h"
#include "lmx/base/error.h"
#include "lmx/core/ops/shape.h"
#include "lmx/io/safetensors.h"
#include "lmx/models/load.h"
#include "lmx/models/tensor_parallel.h"

namespace lmx {
namespace {

namespace fs = std::filesystem;
using testing::random_tensor;

class NcclGroupTest : public testing::CudaTest {};

std::vector<float> host(const Tensor& t) { return t.to(Device::cpu()).to_float_vector(); }

TEST_F(NcclGroupTest, OneRankReturnsItsOwnTensors) {
  cuda::NcclGroup group({0});
  Communicator& c = group.communicator(0);
  EXPECT_EQ(c.world(), 1);
  const Tensor x = random_tensor({3, 5, 7}, 11);
  EXPECT_EQ(host(c.all_reduce_sum(x.to(Device::cuda()))), x.to_float_vector());
  const Tensor g = c.all_gather_last(x.to(Device::cuda()));
  EXPECT_EQ(g.shape(), x.shape());
  EXPECT_EQ(host(g), x.to_float_vector());
  EXPECT_THROW(c.all_reduce_sum(x), InvalidArgument);  // on the host
  EXPECT_THROW(cuda::NcclGroup({0, 0}), InvalidArgument);
  EXPECT_THROW(cuda::NcclGroup({cuda::device_count()}), InvalidArgument);
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
  std::vector<int> devices;
  for (int d = 0; d < world(); ++d) devices.push_back(d);
  cuda::NcclGroup group(devices);
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
  std::vector<int> devices;
  for (int d = 0; d < w; ++d) devices.push_back(d);
  for (const char* name : {"llama", "qwen2", "gemma2"}) {
    SCOPED_TRACE(name);
    const fs::path dir = testing::model_fixture(name);
    if (!fs::exists(dir / "reference.safetensors")) GTEST_SKIP() << "no fixture at " << dir;
    models::LoadedModel whole = models::load_model(dir);
    auto ref = io::SafetensorsFile::open(dir / "reference.safetensors");
    const io::TensorInfo& info = ref.at("input_ids");
    const Tensor input =
        Tensor::wrap(const_cast<std::byte*>(info.data), info.shape, info.dtype, ref.owner()).to(Dtype::i32);
    const Tensor want = whole.model->forward(input, nullptr, {});
    cuda::NcclGroup group(devices);
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

}  // namespace
}  // namespace lmx
