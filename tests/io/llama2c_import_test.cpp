#include "lmx/io/llama2c_import.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "lmx/base/error.h"
#include "lmx/io/model_folder.h"
#include "tests/io/io_test_util.h"

namespace lmx::io {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::TempDir;
using testing::write_file;

const fs::path kDir = "../shared/data/models/stories260K";

// Shared data must be present in CI; elsewhere the test is skipped with the path named.
bool have_data() {
  if (fs::exists(kDir / "stories260K.bin") && fs::exists(kDir / "tok512.bin")) return true;
  if (std::getenv("CI") != nullptr) {
    ADD_FAILURE() << "missing test data " << fs::absolute(kDir);
  }
  return false;
}

// The raw file read independently: header ints, then floats.
struct RawModel {
  std::vector<int32_t> header;
  std::vector<float> w;
};
RawModel read_raw(const fs::path& p) {
  const std::string bytes = read_file(p);
  RawModel m;
  m.header.resize(7);
  std::memcpy(m.header.data(), bytes.data(), 28);
  m.w.resize((bytes.size() - 28) / 4);
  std::memcpy(m.w.data(), bytes.data() + 28, m.w.size() * 4);
  return m;
}

std::vector<float> tensor_floats(const ModelFolder& m, const std::string& name) {
  const WeightRef& r = m.weights().at(name);
  EXPECT_EQ(r.info->dtype, Dtype::f32) << name;
  std::vector<float> out(r.info->nbytes / 4);
  std::memcpy(out.data(), r.info->data, r.info->nbytes);
  return out;
}

TEST(Llama2cImport, PermutationPairsInterleavedWithHalves) {
  EXPECT_EQ(llama2c_rope_row_permutation(8), (std::vector<int64_t>{0, 2, 4, 6, 1, 3, 5, 7}));
  EXPECT_EQ(llama2c_rope_row_permutation(2), (std::vector<int64_t>{0, 1}));
}

TEST(Llama2cImport, Stories260KBecomesAnHfLlamaFolder) {
  if (!have_data()) GTEST_SKIP() << "no " << kDir;
  TempDir out;
  const auto cfg = read_llama2c_config(kDir / "stories260K.bin");
  EXPECT_EQ(cfg.dim, 64);
  EXPECT_EQ(cfg.hidden_dim, 172);
  EXPECT_EQ(cfg.n_layers, 5);
  EXPECT_EQ(cfg.n_heads, 8);
  EXPECT_EQ(cfg.n_kv_heads, 4);
  EXPECT_EQ(cfg.vocab_size, 512);
  EXPECT_EQ(cfg.seq_len, 512);
  EXPECT_TRUE(cfg.shared_classifier);

  import_llama2c(kDir / "stories260K.bin", kDir / "tok512.bin", out.path());
  auto m = ModelFolder::open(out.path());
  const auto& c = m.raw_config();
  EXPECT_EQ(m.model_type(), "llama");
  EXPECT_EQ(c["hidden_size"], 64);
  EXPECT_EQ(c["intermediate_size"], 172);
  EXPECT_EQ(c["num_hidden_layers"], 5);
  EXPECT_EQ(c["num_attention_heads"], 8);
  EXPECT_EQ(c["num_key_value_heads"], 4);
  EXPECT_EQ(c["vocab_size"], 512);
  EXPECT_EQ(c["max_position_embeddings"], 512);
  EXPECT_EQ(c["tie_word_embeddings"], true);
  EXPECT_EQ(c["rms_norm_eps"], 1e-5);
  EXPECT_EQ(c["rope_theta"], 10000.0);
  EXPECT_EQ(c["bos_token_id"], 1);
  EXPECT_EQ(c["eos_token_id"], 2);
  ASSERT_NE(m.generation_config(), nullptr);
  EXPECT_EQ(m.weights().size(), 1u + 5u * 9u + 1u);
  EXPECT_FALSE(m.weights().contains("lm_head.weight"));

  // Offsets into the raw floats, per llama2.c's order.
  const RawModel raw = read_raw(kDir / "stories260K.bin");
  const int64_t dim = 64, hidden = 172, L = 5, vocab = 512, hd = 8, kv = 32;
  const int64_t o_embed = 0, o_rms_att = o_embed + vocab * dim, o_wq = o_rms_att + L * dim;
  const int64_t o_wk = o_wq + L * dim * dim, o_wv = o_wk + L * kv * dim;
  const int64_t o_wo = o_wv + L * kv * dim, o_rms_ffn = o_wo + L * dim * dim;
  const int64_t o_w1 = o_rms_ffn + L * dim, o_w2 = o_w1 + L * hidden * dim;
  const int64_t o_w3 = o_w2 + L * dim * hidden, o_final = o_w3 + L * hidden * dim;
  auto raw_slice = [&](int64_t off, int64_t n) {
    return std::vector<float>(raw.w.begin() + off, raw.w.begin() + off + n);
  };
  EXPECT_EQ(tensor_floats(m, "model.embed_tokens.weight"), raw_slice(o_embed, vocab * dim));
  EXPECT_EQ(tensor_floats(m, "model.norm.weight"), raw_slice(o_final, dim));
  for (int64_t l : {0L, 4L}) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    EXPECT_EQ(tensor_floats(m, p + "input_layernorm.weight"), raw_slice(o_rms_att + l * dim, dim));
    EXPECT_EQ(tensor_floats(m, p + "post_attention_layernorm.weight"),
              raw_slice(o_rms_ffn + l * dim, dim));
    EXPECT_EQ(tensor_floats(m, p + "self_attn.v_proj.weight"),
              raw_slice(o_wv + l * kv * dim, kv * dim));
    EXPECT_EQ(tensor_floats(m, p + "self_attn.o_proj.weight"),
              raw_slice(o_wo + l * dim * dim, dim * dim));
    EXPECT_EQ(tensor_floats(m, p + "mlp.gate_proj.weight"),
              raw_slice(o_w1 + l * hidden * dim, hidden * dim));
    EXPECT_EQ(tensor_floats(m, p + "mlp.down_proj.weight"),
              raw_slice(o_w2 + l * dim * hidden, dim * hidden));
    EXPECT_EQ(tensor_floats(m, p + "mlp.up_proj.weight"),
              raw_slice(o_w3 + l * hidden * dim, hidden * dim));
    // q/k: HF row h*hd + j*hd/2 + i is llama2.c row h*hd + 2i + j (inverse permutation).
    const auto q = tensor_floats(m, p + "self_attn.q_proj.weight");
    const auto k = tensor_floats(m, p + "self_attn.k_proj.weight");
    ASSERT_EQ(q.size(), size_t(dim * dim));
    ASSERT_EQ(k.size(), size_t(kv * dim));
    for (int64_t heads : {8L, 4L}) {
      const auto& hf = heads == 8 ? q : k;
      const int64_t base = heads == 8 ? o_wq + l * dim * dim : o_wk + l * kv * dim;
      for (int64_t h = 0; h < heads; ++h) {
        for (int64_t j = 0; j < 2; ++j) {
          for (int64_t i = 0; i < hd / 2; ++i) {
            const int64_t hf_row = h * hd + j * hd / 2 + i, raw_row = h * hd + 2 * i + j;
            for (int64_t col = 0; col < dim; ++col) {
              ASSERT_EQ(hf[size_t(hf_row * dim + col)], raw.w[size_t(base + raw_row * dim + col)]);
            }
          }
        }
      }
    }
  }

  // The point of the permutation: llama2.c's RoPE on interleaved pairs of W x equals HF's
  // rotate_half RoPE on W' x, up to the same reordering of the output.
  {
    const auto wq_hf = tensor_floats(m, "model.layers.1.self_attn.q_proj.weight");
    const float* wq_raw = raw.w.data() + o_wq + 1 * dim * dim;
    std::mt19937 rng(7);
    std::normal_distribution<float> nd;
    std::vector<float> x(dim);
    for (auto& v : x) v = nd(rng);
    const int pos = 37;
    std::vector<double> a(dim), b(dim);
    for (int64_t r = 0; r < dim; ++r) {
      for (int64_t col = 0; col < dim; ++col) {
        a[size_t(r)] += double(wq_raw[r * dim + col]) * x[size_t(col)];
        b[size_t(r)] += double(wq_hf[size_t(r * dim + col)]) * x[size_t(col)];
      }
    }
    std::vector<double> ra(dim), rb(dim);
    for (int64_t i = 0; i < dim; i += 2) {  // llama2.c
      const double freq = 1.0 / std::pow(10000.0, double(i % hd) / double(hd));
      const double cs = std::cos(pos * freq), sn = std::sin(pos * freq);
      ra[size_t(i)] = a[size_t(i)] * cs - a[size_t(i + 1)] * sn;
      ra[size_t(i + 1)] = a[size_t(i)] * sn + a[size_t(i + 1)] * cs;
    }
    for (int64_t h = 0; h < 8; ++h) {  // HF: q * cos + rotate_half(q) * sin
      for (int64_t i = 0; i < hd / 2; ++i) {
        const double freq = 1.0 / std::pow(10000.0, double(2 * i) / double(hd));
        const double cs = std::cos(pos * freq), sn = std::sin(pos * freq);
        const double x1 = b[size_t(h * hd + i)], x2 = b[size_t(h * hd + i + hd / 2)];
        rb[size_t(h * hd + i)] = x1 * cs - x2 * sn;
        rb[size_t(h * hd + i + hd / 2)] = x2 * cs + x1 * sn;
      }
    }
    for (int64_t h = 0; h < 8; ++h) {
      for (int64_t j = 0; j < 2; ++j) {
        for (int64_t i = 0; i < hd / 2; ++i) {
          EXPECT_NEAR(rb[size_t(h * hd + j * hd / 2 + i)], ra[size_t(h * hd + 2 * i + j)], 1e-9);
        }
      }
    }
  }

  const auto tj = nlohmann::json::parse(read_file(out / "tokenizer.json"));
  EXPECT_EQ(tj["model"]["type"], "BPE");
  EXPECT_EQ(tj["model"]["byte_fallback"], true);
  EXPECT_EQ(tj["model"]["vocab"].size(), 512u);
  EXPECT_EQ(tj["model"]["vocab"]["<unk>"], 0);
  EXPECT_EQ(tj["model"]["vocab"]["<s>"], 1);
  EXPECT_EQ(tj["model"]["vocab"]["</s>"], 2);
  EXPECT_EQ(tj["model"]["vocab"]["<0x0A>"], 13);
  EXPECT_EQ(tj["model"]["vocab"]["\xe2\x96\x81t"], 259);
  EXPECT_EQ(tj["model"]["vocab"]["\xe2\x96\x81the"], 265);
  ASSERT_FALSE(tj["model"]["merges"].empty());
  EXPECT_EQ(tj["model"]["merges"][0], "\xe2\x96\x81 t");  // ' t' has the top score
  EXPECT_EQ(tj["model"]["merges"][1], "h e");
  EXPECT_EQ(tj["added_tokens"].size(), 3u);
  EXPECT_EQ(tj["normalizer"]["normalizers"][0]["type"], "Prepend");
  const auto tc = nlohmann::json::parse(read_file(out / "tokenizer_config.json"));
  EXPECT_EQ(tc["add_bos_token"], true);
  EXPECT_EQ(tc["bos_token"], "<s>");
  EXPECT_EQ(tc["eos_token"], "</s>");
}

TEST(Llama2cImport, BadFilesGiveFormatErrors) {
  if (!have_data()) GTEST_SKIP() << "no " << kDir;
  TempDir dir;
  const std::string model = read_file(kDir / "stories260K.bin");
  const std::string tok = read_file(kDir / "tok512.bin");
  auto expect_format_error = [&](const std::string& m, const std::string& t, const char* what) {
    write_file(dir / "m.bin", m);
    write_file(dir / "t.bin", t);
    try {
      import_llama2c(dir / "m.bin", dir / "t.bin", dir / "out");
      ADD_FAILURE() << "no error for " << what;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_format_error(model.substr(0, model.size() - 4), tok, "bytes but its header describes");
  expect_format_error(model.substr(0, 10), tok, "too small");
  std::string bad = model;
  const int32_t zero = 0;
  std::memcpy(bad.data() + 12, &zero, 4);  // n_heads
  expect_format_error(bad, tok, "n_heads");
  bad = model;
  const int32_t unshared = -512;  // claims an lm_head the file lacks
  std::memcpy(bad.data() + 20, &unshared, 4);
  expect_format_error(bad, tok, "unshared classifier");
  bad = model;
  const int32_t magic[2] = {0x616b3432, 1};
  std::memcpy(bad.data(), magic, 8);
  expect_format_error(bad, tok, "version 1");
  expect_format_error(model, tok.substr(0, tok.size() - 3), "past the end");
  expect_format_error(model, tok + "xxxx", "do not match");
  expect_format_error(model, tok.substr(0, 100), "ends after");
  EXPECT_FALSE(fs::exists(dir / "out" / "model.safetensors"));
  EXPECT_THROW(import_llama2c(dir / "none.bin", dir / "t.bin", dir / "out"), IoError);
}

}  // namespace
}  // namespace lmx::io
