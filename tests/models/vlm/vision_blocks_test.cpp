// The shared blocks of vision towers against scalar references on random inputs:
// patch embedding (a strided convolution), per-token rotary, bidirectional attention in
// blocks, quick GELU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "../parity_util.h"
#include "lmx/core/ops/shape.h"
#include "lmx/nn/attention.h"
#include "lmx/nn/mlp.h"
#include "lmx/nn/patch_embed.h"
#include "lmx/nn/rope.h"

namespace lmx {
namespace {

using testing::relative_error;

std::vector<float> random_values(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

Tensor random_tensor(const Shape& shape, uint32_t seed) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return Tensor::from_vector(random_values(static_cast<size_t>(n), seed), shape);
}

// Loads a module's parameters with random values (each its own seed).
void randomize(nn::Module& m, uint32_t seed) {
  for (auto& p : m.parameters()) *p.tensor = random_tensor(p.shape, seed++);
}

TEST(PatchEmbedding, EqualsAStridedConvolution) {
  const int64_t B = 2, C = 3, H = 8, W = 12, P = 4, D = 5;
  nn::PatchEmbedding pe(C, D, {P, P}, true);
  randomize(pe, 1);
  auto params = pe.parameters();
  const std::vector<float> w = params[0].tensor->to_float_vector(), bias = params[1].tensor->to_float_vector();
  Tensor images = random_tensor({B, C, H, W}, 7);
  const std::vector<float> x = images.to_float_vector();
  Tensor got = pe.forward_images(images);  // [B, patches, D]
  ASSERT_EQ(got.shape(), (Shape{B, (H / P) * (W / P), D}));
  std::vector<float> want;
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t ph = 0; ph < H / P; ++ph) {
      for (int64_t pw = 0; pw < W / P; ++pw) {
        for (int64_t o = 0; o < D; ++o) {
          double acc = bias[static_cast<size_t>(o)];
          for (int64_t c = 0; c < C; ++c) {
            for (int64_t i = 0; i < P; ++i) {
              for (int64_t j = 0; j < P; ++j) {
                acc += static_cast<double>(w[static_cast<size_t>(((o * C + c) * P + i) * P + j)]) *
                       x[static_cast<size_t>(((b * C + c) * H + ph * P + i) * W + pw * P + j)];
              }
            }
          }
          want.push_back(static_cast<float>(acc));
        }
      }
    }
  }
  EXPECT_LE(relative_error(got, Tensor::from_vector(want, got.shape())), 1e-5);
  EXPECT_THROW(pe.forward_images(random_tensor({1, C, 6, 8}, 3)), ShapeError);
}

TEST(ApplyRotary, RotatesTheFirstDimsByPerTokenAngles) {
  const int64_t H = 2, L = 3, D = 6, F = 2;  // rotary over 4 of the 6 dims
  const std::vector<float> angles = random_values(static_cast<size_t>(L * F), 11);
  auto [cos, sin] = nn::rotary_tables(angles, L);
  Tensor x = random_tensor({1, H, L, D}, 12);
  const std::vector<float> xv = x.to_float_vector();
  std::vector<float> want(xv);
  for (int64_t h = 0; h < H; ++h) {
    for (int64_t t = 0; t < L; ++t) {
      const size_t row = static_cast<size_t>((h * L + t) * D);
      for (int64_t i = 0; i < F; ++i) {
        const float a = angles[static_cast<size_t>(t * F + i)], x1 = xv[row + i], x2 = xv[row + i + F];
        want[row + i] = x1 * std::cos(a) - x2 * std::sin(a);
        want[row + i + F] = x2 * std::cos(a) + x1 * std::sin(a);
      }
    }
  }
  EXPECT_LE(relative_error(nn::apply_rotary(x, cos, sin), Tensor::from_vector(want, x.shape())), 1e-6);
}

// Bidirectional attention over tokens in blocks equals attention over each block alone.
TEST(AttentionBlocks, NonCausalBlocksEqualSeparateSequences) {
  nn::AttentionOptions o{.hidden = 8, .heads = 2, .kv_heads = 2, .head_dim = 4, .qkv_bias = true, .o_bias = true};
  o.causal = false;
  nn::Attention attn(o);
  randomize(attn, 21);
  Tensor x = random_tensor({1, 5, 8}, 30);
  nn::AttentionContext ctx;
  ctx.blocks = {0, 0, 0, 1, 1};
  Tensor got = attn.forward(x, nullptr, &ctx);
  Tensor want = ops::concat({attn.forward(x.slice(1, 0, 3).contiguous(), nullptr),
                             attn.forward(x.slice(1, 3, 5).contiguous(), nullptr)},
                            1);
  EXPECT_LE(relative_error(got, want), 1e-5);
  // Without blocks every token sees all five: a different result.
  EXPECT_GT(relative_error(attn.forward(x, nullptr), want), 1e-3);
}

// Causal attention with a block: the block's tokens see each other both ways, text
// tokens stay causal (the last token's row is the plain causal one).
TEST(AttentionBlocks, CausalBlocksOpenOnlyWithinTheBlock) {
  nn::AttentionOptions o{.hidden = 8, .heads = 2, .kv_heads = 1, .head_dim = 4};
  nn::Attention attn(o);
  randomize(attn, 40);
  Tensor x = random_tensor({1, 5, 8}, 50);
  nn::AttentionContext ctx;
  ctx.blocks = {-1, 0, 0, -1, -1};
  Tensor got = attn.forward(x, nullptr, &ctx), causal = attn.forward(x, nullptr);
  EXPECT_LE(relative_error(got.slice(1, 0, 1), causal.slice(1, 0, 1)), 1e-6);
  EXPECT_GT(relative_error(got.slice(1, 1, 2), causal.slice(1, 1, 2)), 1e-4);  // token 1 sees token 2
  EXPECT_LE(relative_error(got.slice(1, 2, 3), causal.slice(1, 2, 3)), 1e-6);
  EXPECT_LE(relative_error(got.slice(1, 4, 5), causal.slice(1, 4, 5)), 1e-6);
}

TEST(Activation, QuickGelu) {
  Tensor x = Tensor::from_vector(std::vector<float>{-2.0f, 0.0f, 0.5f, 3.0f}, {4});
  const auto got = nn::activate(nn::parse_activation("quick_gelu"), x).to_float_vector();
  for (size_t i = 0; i < got.size(); ++i) {
    const float v = x.to_float_vector()[i];
    EXPECT_NEAR(got[i], v / (1.0f + std::exp(-1.702f * v)), 1e-6);
  }
}

}  // namespace
}  // namespace lmx
